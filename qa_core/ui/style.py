"""The app's own CSS and page script: where Gradio's components read badly on a phone or a wide screen."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from qa_core.compare_views import PAIR_COLUMNS, SLICE_COLUMNS
from qa_core.errors_views import TABLE_COLUMNS

PHONE_PX = 640  # below this width the phone rules apply
# The question tables on a phone: Gradio sizes columns as shares of the screen, so seven columns in 320 px broke
# every word letter by letter. On a phone each column gets a readable width in px and the table scrolls sideways;
# 0 hides a column a reader does not need there (the id still travels with a clicked row).
PHONE_ERRORS_TABLE = {"id": 0, "word": 0, "question": 140, "prediction": 120, "EM": 40, "F1": 48, "gold": 120}
# The pairs table keeps the question and both predictions on a phone's screen, both F1s one swipe away: the outcome
# is hidden there (the Questions choice filters by it and the selected question's line names it).
PHONE_PAIRS_TABLE = {"id": 0, "outcome": 0, "question": 100, "answer A": 88, "answer B": 88, "F1 A": 44,
                     "F1 B": 44, "gold": 110}
# The slices table: its shares of a phone's width broke every figure digit by digit; it scrolls sideways instead.
PHONE_SLICES_TABLE = {"slice": 100, "group": 70, "questions": 96, "EM A": 48, "EM B": 48, "F1 A": 48, "F1 B": 48}

BASE_CSS = """
/* A long selected label (a run's name and F1) ends in an ellipsis before the dropdown's arrow, not under it. */
input[role="combobox"] { padding-right: 2.25rem; text-overflow: ellipsis; }
/* Gold and predicted spans in their context: Gradio lays the pieces out as flex items with word-break: break-all,
   so words were cut mid-word and every marked span started a line of its own. Read as running text instead. */
#errors-detail .textfield, #compare-detail .textfield { display: block; word-break: normal; overflow-wrap: break-word; }
#errors-detail .token.highlighted, #compare-detail .token.highlighted { margin: 0 0.15em; }
/* A drawn figure carries its own title; Gradio's label floated over plotly's tool bar on every plot narrower than
   both (three in a row, or a phone). An empty plot keeps its label, to say what will be drawn there. */
.block:has(.js-plotly-plot) > label[data-testid="block-label"] { display: none; }
/* The Ask tab's answer before there is one: an empty block that held its place, so the Score box beside the
   Context box started lower than it. */
#ask-answer:not(:has(.qa-answer)) { display: none; }
/* plotly's logo (its config's displaylogo, which Gradio does not pass on): one more button on every tool bar. */
.js-plotly-plot .modebar-btn--logo { display: none; }
"""


def column_widths_css(table: str, columns: Sequence[str], widths: Mapping[str, int]) -> str:
    """Rules giving each column of a Gradio Dataframe (elem_id `table`) a width in px, or hiding it (0): header
    cells, the hidden sizing row and the body cells alike, so they stay aligned. !important beats the widths
    Gradio's script writes into each cell's style."""
    rules = [f"#{table} .header-table {{ width: max-content !important; }}"]
    for index, name in enumerate(columns):
        cells = (f"#{table} th:nth-child({index + 1}), #{table} .sizing-body td:nth-child({index + 1}), "
                 f'#{table} .body-cell[data-col="{index}"]')
        width = widths[name]
        size = (f"width: {width}px !important; min-width: {width}px !important; max-width: {width}px !important; "
                f"flex: 0 0 {width}px !important;")
        rules.append(f"{cells} {{ {size if width else 'display: none;'} }}")
    return "\n".join(rules)


# On a phone the tables take the page's proportional font: Gradio's monospace one is wide enough that a column's
# longer words ("prediction", "characteristic") did not fit and were broken mid-word.
PHONE_TABLES = ("errors-table", "compare-table", "compare-slice-table")
PHONE_TABLE_FONT = ", ".join(f"#{table} {part}" for table in PHONE_TABLES for part in (".header-table", ".virtual-row",
                                                                                       "table"))


def app_css() -> str:
    phone = "\n".join((f"{PHONE_TABLE_FONT} {{ font-family: var(--font) !important; }}",
                       column_widths_css("errors-table", TABLE_COLUMNS, PHONE_ERRORS_TABLE),
                       column_widths_css("compare-table", PAIR_COLUMNS, PHONE_PAIRS_TABLE),
                       column_widths_css("compare-slice-table", SLICE_COLUMNS, PHONE_SLICES_TABLE)))
    return f"{BASE_CSS}\n@media (max-width: {PHONE_PX}px) {{\n{phone}\n}}\n"


# A slider's number box left empty, or holding what is no number (the browser shows "abc" as empty), shows the
# last value it held again: Gradio left it blank while the slider and the figures kept that value, and a box
# emptied with the keyboard became 0 on losing the focus (and the figures with it). Listened for in the capture
# phase, before Gradio's own blur handler reads the box; the input event hands the value back to Gradio. While the
# box has the focus, what is no number yet ("-", the first key of a negative threshold) never reaches Gradio, which
# sent it as None for the server to refuse, with an error badge on every output.
SLIDER_BOX_JS = """
() => {
  const sliderBox = e => e.target instanceof HTMLInputElement && e.target.type === 'number'
    && e.target.closest('.block')?.querySelector('input[type=range]') ? e.target : null;
  const keep = e => {
    const box = sliderBox(e);
    if (!box) return;
    if (box.value !== '') box.dataset.shown = box.value;
    else if (e.type !== 'focusin') e.stopImmediatePropagation();
  };
  document.addEventListener('focusin', keep, true);
  document.addEventListener('input', keep, true);
  document.addEventListener('change', keep, true);
  document.addEventListener('blur', e => {
    const box = sliderBox(e);
    if (!box || box.value !== '' || box.dataset.shown === undefined) return;
    box.value = box.dataset.shown;
    box.dispatchEvent(new Event('input', {bubbles: true}));
  }, true);
}
"""

# A tab switch made by a button far down a tab (Send to the Ask tab, Quick fine-tune) left the page scrolled where
# that button was, down the next tab; the next tab shows from the page's top instead, wherever its tab bar is
# scrolled out of view (a switch from the tab bar itself keeps the page where it is).
TAB_TOP_JS = """
() => {
  const tabs = document.getElementById('tabs');
  if (tabs && tabs.getBoundingClientRect().top < 0) window.scrollTo(0, 0);
}
"""


def unselect_js(picker: str) -> str:
    """A page script for a run picker's change (elem_id `picker`): the tab's tables drop the cell selected in the
    last run's table, as a Gradio table does on a click anywhere outside it. A mouse makes that click on the picker;
    a pick with the keyboard, or a job's end, makes none, and the new table kept the outline on a question nobody
    selected. The click is dispatched on the picker's block, where a mouse would make it."""
    block = f"document.getElementById({json.dumps(picker)})"
    return f"() => {{ {block}?.dispatchEvent(new MouseEvent('click', {{bubbles: true}})); }}"
