"""End to end in headless Chromium at 1400 px: train two runs, compare them, explain an answer, read calibration;
SQuAD 2.0 runs (a context without any span, thresholds, abstentions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.evaluation import run_evaluation
from qa_core.plots import PASSED_OVER
from tests.test_browser import (ARTIFACTS, CHROMEDRIVER, CHROMIUM, app_server, browser, find, find_all,  # noqa: F401
                                open_tab, server, set_number, wait_for)
from tests.test_ui_errors import v2_run
from tests.v2_data import write_v2

PLOT_LABELS = "return document.querySelector('#errors-plot .js-plotly-plot').layout.annotations.map(a => a.text);"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="needs Debian's chromium and chromium-driver")]


def click(driver, css: str, what: str) -> None:
    """Click once the element is there and takes the click (a re-rendered table may swap its cells meanwhile)."""
    wait_for(lambda: find(driver, css).click() or True, 60, what)


def train_run(driver, steps: int, job: int) -> None:
    for name, value in (("max_steps", steps), ("per_device_train_batch_size", 4), ("max_seq_length", 128),
                        ("doc_stride", 32), ("max_eval_samples", 10)):
        set_number(driver, name, value)
    click(driver, "#train-start", "the start button")
    wait_for(lambda: f"Job {job}: finished" in find(driver, "#train-status textarea").get_attribute("value"), 180,
             f"training job {job} to finish")


def open_accordion(driver, label: str) -> None:
    next(b for b in find_all(driver, "button") if b.text.strip().startswith(label)).click()


def pick_option(driver, css: str, text: str | None = None) -> str:
    """Open a dropdown and click its option `text` (the first option when None); returns the option's text."""
    click(driver, f"{css} input", f"the dropdown {css}")  # the accordion's content renders once it opens
    try:
        options = wait_for(lambda: [o for o in find_all(driver, "[data-testid=dropdown-option]") if o.text.strip()],
                           60, f"the options of {css}")
    except AssertionError:
        driver.save_screenshot(str(ARTIFACTS / "errors-no-options.png"))
        raise AssertionError(f"no options in {css}: {find(driver, css).text!r}") from None
    option = next(o for o in options if text is None or o.text.strip() == text)
    chosen = option.text.strip()
    option.click()
    return chosen


def columns_in_view(driver, css: str) -> dict[str, bool]:
    """Whether each header cell of a table lies inside its scroll box, with nothing scrolled sideways."""
    return driver.execute_script("""
        const box = document.querySelector(arguments[0] + ' table').parentElement.getBoundingClientRect();
        return Object.fromEntries([...document.querySelectorAll(arguments[0] + ' thead th')].map(
            th => [th.innerText.trim(), th.getBoundingClientRect().right <= Math.min(box.right, innerWidth) + 1]));
    """, css)


def test_compare_explain_and_calibrate(server, browser):  # noqa: F811 (the fixtures imported above)
    browser.get(server)
    wait_for(lambda: find(browser, "#ask-question textarea"), 60, "the Ask tab")
    open_tab(browser, "Train")
    train_run(browser, 1, 1)
    train_run(browser, 4, 2)

    open_tab(browser, "Errors")  # the newest run (B's candidate) is picked and loaded
    wait_for(lambda: "10 questions" in find(browser, "#errors-summary textarea").get_attribute("value"), 60,
             "the run summary")
    click(browser, "#errors-send", "the send button")  # no row selected yet: a message, no move
    wait_for(lambda: "Click a row" in browser.page_source, 30, "the message about selecting a row first")
    assert find(browser, "#errors-run").is_displayed()
    wait_for(lambda: find(browser, "#errors-table [data-testid=cell-0-2]"), 60, "the question table")
    shown = columns_in_view(browser, "#errors-table")
    assert all(shown[name] for name in ("prediction", "EM", "F1")), shown
    click(browser, "#errors-table [data-testid=cell-0-2]", "a question row")
    wait_for(lambda: find(browser, "#errors-detail .highlighted"), 60, "gold and predicted spans")
    # the logits come from the model thread, waited for in a coroutine that Gradio hands the row's SelectData
    wait_for(lambda: find(browser, "#errors-plot .js-plotly-plot"), 60, "the row's logit plot")
    assert "no logit plot" not in find(browser, "#errors-question textarea").get_attribute("value")

    click(browser, "#errors-explain", "the explain button")
    wait_for(lambda: find(browser, "#errors-why .js-plotly-plot"), 90, "the attribution heat map")
    note = find(browser, "#errors-why-note textarea").get_attribute("value")
    assert "budget 5 s" in note and " in " in note
    browser.execute_script("arguments[0].scrollIntoView()", find(browser, "#errors-why-note"))
    browser.save_screenshot(str(ARTIFACTS / "errors-1-attributions.png"))

    open_accordion(browser, "Compare with another run")
    pick_option(browser, "#compare-run")
    summary = wait_for(lambda: find(browser, "#compare-summary textarea").get_attribute("value"), 60,
                       "the comparison")
    assert "paired bootstrap interval" in summary and "10 questions" in summary, summary
    wait_for(lambda: find(browser, "#compare-slices .js-plotly-plot"), 60, "the slices figure")
    click(browser, "#compare-table [data-testid=cell-0-2]", "a compared row")
    wait_for(lambda: find(browser, "#compare-detail .highlighted"), 60, "both answers and the gold in the context")
    browser.save_screenshot(str(ARTIFACTS / "errors-2-compare.png"))

    open_accordion(browser, "Trust the score: calibration")
    wait_for(lambda: find(browser, "#calibration-reliability .js-plotly-plot"), 60, "the reliability diagram")
    wait_for(lambda: find(browser, "#calibration-coverage .js-plotly-plot"), 60, "the coverage curve")
    assert "Expected calibration error" in find(browser, "#calibration-text textarea").get_attribute("value")
    assert "questions answered" in find(browser, "#calibration-readout textarea").get_attribute("value")
    browser.execute_script("arguments[0].scrollIntoView()", find(browser, "#calibration-panel"))
    browser.save_screenshot(str(ARTIFACTS / "errors-3-calibration.png"))


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory, tiny_model_dir) -> Iterator[tuple[str, Path]]:
    """The app over runs prepared without the UI, and their folder: a SQuAD 2.0 run with its model, and an
    evaluation whose data holds a context without any span."""
    runs = tmp_path_factory.mktemp("v2-runs")
    data = write_v2(tmp_path_factory.mktemp("data") / "v2.json")
    run_evaluation(QAConfig(model_name_or_path=str(tiny_model_dir), output_dir=str(runs / "v2-blank"),
                            validation_file=str(write_v2(data.with_name("blank.json"), blank=True)),
                            version_2_with_negative=True), device="cpu")
    v2_run(tiny_model_dir, data, runs / "v2-run")
    with app_server(runs, tiny_model_dir, tmp_path_factory.mktemp("v2-server") / "app.log") as url:
        yield url, runs


def pick_run(driver, name: str) -> None:
    """Pick a run in the Errors tab by its name (its label goes on with status and F1), once the tab has loaded the
    newest run: that would replace a run picked before."""
    wait_for(lambda: summary(driver), 60, "the newest run's summary")
    click(driver, "#errors-run input", "the run picker")
    options = wait_for(lambda: [o for o in find_all(driver, "[data-testid=dropdown-option]") if o.text.strip()], 60,
                       "the runs")
    next(o for o in options if o.text.replace("✓", "").split()[0] == name).click()


def summary(driver) -> str:
    return find(driver, "#errors-summary textarea").get_attribute("value")


def set_threshold(driver, value: float) -> None:
    box = find(driver, "#errors-threshold input[type=number]")
    box.clear()
    box.send_keys(str(value))
    find(driver, "#errors-summary").click()  # the box takes its value when it loses the focus


def test_squad_v2_thresholds_and_abstentions(v2_server, browser):  # noqa: F811 (the fixture imported above)
    """Found by trying the app: picking a run whose records hold a context without any span broke the session (the
    slider's 309-digit maximum was no JSON); the slider could not reach the best-F1 threshold; an abstained row
    showed only the gold."""
    url, runs = v2_server
    browser.get(url)
    wait_for(lambda: find(browser, "#ask-question textarea"), 60, "the Ask tab")
    open_tab(browser, "Errors")
    pick_run(browser, "v2-blank")
    wait_for(lambda: summary(browser).startswith("9 questions"), 60, "the summary of the run with a blank context")
    slider = find(browser, "#errors-threshold input[type=range]")
    assert -20 < float(slider.get_attribute("min")) < float(slider.get_attribute("max")) < 20
    pick_run(browser, "v2-run")  # the session still answers
    wait_for(lambda: summary(browser).startswith("8 questions"), 60, "the next run's summary")
    metrics = json.loads((runs / "v2-run" / "eval_metrics.json").read_text())
    assert f"F1 {metrics['f1']:.1f}" in summary(browser)
    click(browser, "#errors-threshold-best", "the best-F1 button")
    wait_for(lambda: f"F1 {metrics['best_f1']:.1f}" in summary(browser), 60, "the best F1 of the evaluation")
    click(browser, "#errors-threshold-evaluated", "the evaluated-threshold button")
    wait_for(lambda: f"F1 {metrics['f1']:.1f}" in summary(browser), 60, "the F1 as evaluated")

    set_threshold(browser, float(slider.get_attribute("min")))  # abstain on every question
    wait_for(lambda: "F1 37.5" in summary(browser), 60, "every question abstained: NoAns right, HasAns wrong")
    click(browser, "#errors-table [data-testid=cell-0-2]", "a question row")
    wait_for(lambda: PASSED_OVER in find(browser, "#errors-detail").text, 60, "the span passed over, marked")
    wait_for(lambda: PASSED_OVER in browser.execute_script(PLOT_LABELS), 60, "the span passed over in the plot")
    assert "Abstained: null odds" in find(browser, "#errors-question textarea").get_attribute("value")
    click(browser, "#errors-explain", "the explain button")
    wait_for(lambda: "passed over" in find(browser, "#errors-why-note textarea").get_attribute("value"), 90,
             "the note on what the attributions explain")
    browser.execute_script("arguments[0].scrollIntoView()", find(browser, "#errors-question"))
    browser.save_screenshot(str(ARTIFACTS / "errors-4-abstained.png"))
