"""End to end: launch `python app.py` on localhost and drive it in headless Chromium (ask, train, browse errors)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ROOT = Path(__file__).resolve().parent.parent
CONTEXT = ("The lighthouse lens was designed by Augustin Fresnel in the early nineteenth century. "
           "<script>window.injected = 1</script> Keepers once lived at the station.")
# About 2,700 words, the answer near the end: the case where the answer box once grew thousands of pixels tall.
LONG = " ".join(["The keeper wound the clockwork every night and trimmed the wick before dawn."] * 190)
LATE = LONG + " The last keeper was Abbie Burgess, who left the station in 1875."
# Where the answer block stands: the box's geometry, the mark's place in it, the headline's size.
MEASURE = """
const box = document.querySelector('#ask-answer .qa-context');
const mark = box.querySelector('mark');
const headline = document.querySelector('#ask-answer .qa-headline');
return {client: box.clientHeight, scroll: box.scrollHeight, top: box.scrollTop, markTop: mark.offsetTop,
        markHeight: mark.offsetHeight, wordBreak: getComputedStyle(box).wordBreak,
        headlinePx: parseFloat(getComputedStyle(headline).fontSize),
        bodyPx: parseFloat(getComputedStyle(box).fontSize), blockHeight: box.closest('.qa-answer').offsetHeight};
"""
# The contrast of an element's text against the page (WCAG's ratio), its opacity blended in: the answer's detail
# line was the theme's subdued grey, faint on white.
CONTRAST = """
const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                   return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const el = document.querySelector(arguments[0]);
let opacity = 1;
for (let e = el; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
let back = el;
while (back && getComputedStyle(back).backgroundColor.match(/[\\d.]+/g).length === 4
       && parseFloat(getComputedStyle(back).backgroundColor.match(/[\\d.]+/g)[3]) === 0) back = back.parentElement;
const bg = rgb(back ? getComputedStyle(back).backgroundColor : 'rgb(255, 255, 255)');
const fg = rgb(getComputedStyle(el).color).map((v, i) => v * opacity + bg[i] * (1 - opacity));
const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
return (hi + 0.05) / (lo + 0.05);
"""
# Header cells of the top-5 table whose text does not fit their cell: cut off, or broken over two lines.
CLIPPED = """
const lines = cell => {  // the most lines any one piece of text in the cell takes
  const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  let most = 0;
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    if (!node.textContent.trim()) continue;
    const r = document.createRange(); r.selectNodeContents(node);
    most = Math.max(most, new Set([...r.getClientRects()].map(q => Math.round(q.top))).size);
  }
  return most; };
return [...document.querySelectorAll('#ask-alternatives th')].filter(c => c.offsetWidth > 0)
  .filter(c => c.scrollWidth > c.clientWidth + 1 || lines(c) > 1).map(c => c.innerText.trim());
"""
# The token labels under a plot, by their right edges: the smallest gap between neighbours and the font size.
# Labels slant at 60 degrees, so neighbours clear each other when gap * sin(60) is at least the font size.
TICKS = """
const texts = [...document.querySelectorAll(arguments[0] + ' .xaxislayer-above .xtick text')];
const xs = texts.map(t => t.getBoundingClientRect()).filter(b => b.width > 0).map(b => b.right).sort((a, b) => a - b);
return {labels: xs.length, gap: Math.min(...xs.slice(1).map((x, i) => x - xs[i])),
        size: parseFloat(getComputedStyle(texts[0]).fontSize)};
"""

# The tokens of the "Why this answer?" plot (its heat map's labels, every one, not only those the axis shows).
WHY_TOKENS = "return document.querySelector('#ask-why-plot .js-plotly-plot').data[0].text[0].join(' ');"

# The Errors tab on a phone: the question table's shown columns and their widths, where the run picker's text
# stops against its arrow, whether its label shows the run's F1 whole before the ellipsis that cuts the rest (a
# run's name before it pushed the F1 out of a phone's picker), and whether the context breaks words.
PHONE_ERRORS = """
const shown = [...document.querySelectorAll('#errors-table th')].filter(c => c.offsetWidth > 0);
const input = document.querySelector('#errors-run input'), style = getComputedStyle(input);
const textEnd = input.getBoundingClientRect().right - parseFloat(style.paddingRight);
const ctx = document.createElement('canvas').getContext('2d');
ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
const scored = (input.value.match(/^.*?F1 [\\d.]+/) || [''])[0];
const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
return {columns: shown.map(c => c.innerText.trim()), narrowest: Math.min(...shown.map(c => c.offsetWidth)),
        textClearsArrow: textEnd <= document.querySelector('#errors-run .icon-wrap').getBoundingClientRect().left,
        label: input.value, scoreShown: scored !== '' && ctx.measureText(scored + '…').width <= room,
        contextBreak: getComputedStyle(document.querySelector('#errors-detail .textfield')).wordBreak};
"""


# Plots whose Gradio label and plotly's tool bar overlap: the names of their labels. Each figure carries a title of
# its own; the label floated over the tool bar of every plot narrower than both together.
COVERED_LABELS = """
const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
return [...document.querySelectorAll('.block')].filter(b => b.querySelector('.js-plotly-plot')).flatMap(block => {
  const label = block.querySelector('label[data-testid=block-label]');
  if (!label || label.offsetWidth === 0) return [];
  const box = label.getBoundingClientRect();
  const buttons = [...block.querySelectorAll('.modebar-btn')].map(b => b.getBoundingClientRect());
  return buttons.some(b => b.width > 0 && overlap(box, b)) ? [label.innerText.trim()] : [];
});
"""


def words_cut(driver, css: str) -> list[str]:
    """The shown header cells of a table whose longest word is wider than the cell's text box: a word the cell
    must break (Gradio's tables break words anywhere, so "prediction" became "predicti / on")."""
    return driver.execute_script("""
        const ctx = document.createElement('canvas').getContext('2d');
        const shown = [...document.querySelectorAll(arguments[0] + ' thead th')].filter(th => th.offsetWidth > 0);
        return shown.filter(th => {
            const text = [...th.querySelectorAll('*')].find(e => e.children.length === 0 && e.innerText.trim()) || th;
            const style = getComputedStyle(text);
            ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
            const widest = Math.max(...th.innerText.trim().split(/\\s+/).map(word => ctx.measureText(word).width));
            return widest > text.getBoundingClientRect().width + 0.5;
        }).map(th => th.innerText.trim());
    """, css)


def labels_clear(ticks: dict) -> bool:
    return ticks["labels"] > 5 and ticks["gap"] * 0.866 >= ticks["size"]


pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                        "chromium-driver); .ci/run installs them")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as err:  # the page is still rendering: elements come and go
            value, last = None, err
        if value:
            return value
        time.sleep(0.25)
    # The last error says why (a click intercepted by an overlay, a stale element), where there was one.
    said = f" (last: {type(last).__name__}: {str(last).splitlines()[0] if str(last) else ''})" if last else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{said}")


STOPPED = "20250101-000000-stopped"  # a run cancelled before its first step, for Resume


def stop_early(folder: Path, model: Path) -> None:
    from qa_core.config import QAConfig
    from qa_core.training import train
    train(QAConfig(model_name_or_path=str(model), train_file="sample", validation_file="sample",
                   output_dir=str(folder), max_steps=3, per_device_train_batch_size=4, max_train_samples=8,
                   max_eval_samples=4, max_seq_length=128, doc_stride=32), should_stop=lambda: True)


@contextlib.contextmanager
def app_server(runs: Path, model: Path, log: Path) -> Iterator[str]:
    """`python app.py` on a free port of localhost over a runs folder, stopped when the block ends."""
    port = free_port()
    env = {**os.environ, "QA_RUNS_DIR": str(runs), "QA_DEFAULT_MODEL": str(model),
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: process.poll() is None and urllib.request.urlopen(url, timeout=2).status == 200, 180,
                 f"the app at {url} (log: {log})")
        assert "Running on local URL" in log.read_text()
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir) -> Iterator[str]:
    runs = tmp_path_factory.mktemp("runs")
    stop_early(runs / STOPPED, tiny_model_dir)
    with app_server(runs, tiny_model_dir, tmp_path_factory.mktemp("server") / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1800", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def find(driver, css: str):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css: str):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def label_parts(label: str) -> list[str]:
    """A picker's label (an option's text, or the closed picker's) in its parts: F1, run name, ...; the ✓ of the
    option picked left out."""
    return label.replace("✓", "").strip().split(" · ")


def open_tab(driver, name: str) -> None:
    next(b for b in find_all(driver, "button[role=tab]") if b.text.strip() == name).click()


def open_options(driver) -> None:
    """Open the Train tab's Options accordion unless it is open: it starts closed."""
    if not any(f.is_displayed() for f in find_all(driver, "#train-max_steps input")):
        find(driver, "#train-options button").click()
        wait_for(lambda: find(driver, "#train-max_steps input").is_displayed(), 30, "the Train options")


def set_number(driver, name: str, value: int) -> None:
    open_options(driver)
    field = find(driver, f"#train-{name} input")
    field.clear()
    field.send_keys(str(value))


def type_text(driver, css: str, text: str) -> None:
    """Put a long text in a textbox at once (typing it key by key takes minutes), as an input event."""
    driver.execute_script("const t = document.querySelector(arguments[0]); t.value = arguments[1];"
                          "t.dispatchEvent(new Event('input', {bubbles: true}));", css, text)


def paste(driver, css: str, text: str) -> None:
    """Put a text in a textbox as a paste does: through the browser's editing, which applies a maxlength."""
    box = find(driver, css)
    box.clear()
    box.click()
    driver.execute_cdp_cmd("Input.insertText", {"text": text})


def ask(driver, context: str, question: str, before: str = "") -> str:
    type_text(driver, "#ask-context textarea", context)
    type_text(driver, "#ask-question textarea", question)
    find(driver, "#ask-button").click()
    return wait_for(lambda: (text := find(driver, "#ask-answer .qa-headline").text.strip()) != before and text, 60,
                    "the answer")


PHONE_PX = (390, 844)
# The page's widths: the window's (innerWidth) and the layout's (clientWidth, less a classic scroll bar).
WIDTHS = "return [innerWidth, document.documentElement.clientWidth]"


@contextlib.contextmanager
def at_width(driver, px: int, height: int = 1000, mobile: bool = False) -> Iterator[None]:
    """The page laid out px wide for the block by device emulation, then at the window's size again (the desktop
    width the tests start from). A window resized instead laid a phone's page out at another width than asked
    (a minimum window width, or a scroll bar's 15 px taken from it)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": px, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    time.sleep(1)  # the layout and the plots redraw
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@contextlib.contextmanager
def phone(driver) -> Iterator[None]:
    """The page as a 390 px phone lays it out (a mobile viewport: its scroll bars overlay the page), for the block."""
    with at_width(driver, *PHONE_PX, mobile=True):
        assert driver.execute_script(WIDTHS) == [PHONE_PX[0]] * 2, driver.execute_script(WIDTHS)
        yield


@pytest.fixture(scope="module")
def page(server, browser):
    """One page load for the whole file: each test opens the tab it needs."""
    browser.get(server)
    wait_for(lambda: find(browser, "#ask-question textarea"), 60, "the Ask tab")
    return browser


def tops(driver, *css: str) -> list[float]:
    return driver.execute_script("return arguments[0].map(c => document.querySelector(c).getBoundingClientRect().top)",
                                 list(css))


def check_short_answer(browser) -> str:
    """An answer marked in a context holding a script tag: shown as text, never run. Found by a tester at 1400 px:
    before the first answer the Score box started lower than the Context box beside it (the empty answer's
    block held its place above)."""
    context, score = tops(browser, "#ask-context", "#ask-score")
    assert abs(context - score) <= 1, (context, score)
    answer = ask(browser, CONTEXT, "Who designed the lens?")
    browser.save_screenshot(str(ARTIFACTS / "1-ask.png"))
    assert answer and answer in CONTEXT.replace("  ", " ")
    assert "<script>" in find(browser, "#ask-answer .qa-context").text  # shown as text
    assert browser.execute_script("return window.injected") is None  # never run
    assert "probability" in find(browser, "#ask-score textarea").get_attribute("value")
    assert "probability" in find(browser, "#ask-answer .qa-detail").text
    assert browser.execute_script(CONTRAST, "#ask-answer .qa-detail") >= 4.5  # WCAG AA for body text
    return answer


def check_long_answer(browser, before: str) -> None:
    """A long context: the box keeps its height and scrolls to the answer; the top 5 and the plot stay readable,
    on a phone too."""
    ask(browser, LATE, "Who was the last keeper?", before=before)
    wait_for(lambda: browser.execute_script(MEASURE)["top"] > 0 or None, 20, "the context box to scroll")
    box = browser.execute_script(MEASURE)
    browser.save_screenshot(str(ARTIFACTS / "1b-ask-long.png"))
    assert box["scroll"] > 5 * box["client"] and box["blockHeight"] < 700 and box["wordBreak"] == "normal"
    assert box["top"] <= box["markTop"] and box["markTop"] + box["markHeight"] <= box["top"] + box["client"]
    assert box["headlinePx"] >= 1.3 * box["bodyPx"]  # the answer in large type (a long one a little smaller)
    headers = [c.text.strip() for c in find_all(browser, "#ask-alternatives th") if c.is_displayed()]
    assert {"answer", "probability"} <= set(headers) and browser.execute_script(CLIPPED) == []  # readable at 1400 px
    assert labels_clear(ticks := browser.execute_script(TICKS, "#ask-plot")), ticks
    with phone(browser):
        assert labels_clear(ticks := browser.execute_script(TICKS, "#ask-plot")), ticks  # fewer, not overlapping
        assert browser.execute_script(COVERED_LABELS) == []
        browser.save_screenshot(str(ARTIFACTS / "1c-ask-phone.png"))
        find(browser, "#ask-answer").screenshot(str(ARTIFACTS / "1d-ask-phone-answer.png"))
        find(browser, "#ask-alternatives").screenshot(str(ARTIFACTS / "1e-ask-phone-top5.png"))
        assert browser.execute_script(CLIPPED) == []


def check_why_explains_the_answer_shown(browser) -> None:
    """Attributions of the last answer, with the time they took: of the question it answered, not of the question
    typed since."""
    type_text(browser, "#ask-question textarea", "Who painted the tower?")
    find(browser, "#ask-why").click()
    note = wait_for(lambda: find(browser, "#ask-why-note textarea").get_attribute("value"), 60, "the attributions")
    assert " s" in note and not note.startswith("No explanation") and "changed after this answer" in note
    tokens = browser.execute_script(WHY_TOKENS)
    assert "keeper" in tokens and "painted" not in tokens, tokens
    browser.save_screenshot(str(ARTIFACTS / "1f-ask-why.png"))


def test_ask_marks_the_answer_and_explains_it(page):
    check_long_answer(page, before=check_short_answer(page))
    check_why_explains_the_answer_shown(page)


def test_pasted_text_over_the_limits_is_refused_not_cut(page):
    """A context or question over the server's limits is kept whole in its box and refused with the limit, not
    cut by the page to an answerable text that lost the sentence holding the answer."""
    message = lambda: find(page, "#ask-message textarea").get_attribute("value")  # noqa: E731
    tail = " The last keeper was Abbie Burgess, who left the station in 1875."
    context = (LONG + " " + LONG)[:15_342 - len(tail)] + tail  # the answer in the last 342 characters
    paste(page, "#ask-context textarea", context)
    paste(page, "#ask-question textarea", "Who was the last keeper?")
    assert len(find(page, "#ask-context textarea").get_attribute("value")) == 15_342
    find(page, "#ask-button").click()
    wait_for(lambda: "15,342 characters" in message(), 60, "the refusal of the long context")
    assert message() == ("Cannot answer: the context has 15,342 characters; this server answers contexts of up to "
                         "15,000")
    paste(page, "#ask-context textarea", CONTEXT)
    paste(page, "#ask-question textarea", "Who designed the lens? " * 25)
    assert len(find(page, "#ask-question textarea").get_attribute("value")) == 575
    find(page, "#ask-button").click()
    wait_for(lambda: "question has 575 characters" in message(), 60, "the refusal of the long question")


# Where the Train tab's data upload ends and its Start button begins, in page coordinates, and the page's height.
TRAIN_REACH = """
const bottom = e => e.getBoundingClientRect().bottom + scrollY, top = e => e.getBoundingClientRect().top + scrollY;
const options = document.querySelector('#train-options');
return {upload: bottom(document.querySelector('#train-upload')), start: top(document.querySelector('#train-start')),
        page: document.documentElement.scrollHeight, sideways: options.scrollWidth > options.clientWidth};
"""


def test_on_a_phone_the_start_button_is_near_the_upload(page):
    """At 390 px the Options (dozens of fields) start closed: Start is a short scroll below the upload box, and
    the options are one tap away on a label that fits (a wrapped one made the closed box scroll sideways)."""
    page.refresh()  # the accordion as the page first shows it, whatever earlier tests opened
    wait_for(lambda: find(page, "#ask-question textarea"), 60, "the Ask tab")
    open_tab(page, "Train")
    with phone(page):
        reach = wait_for(lambda: page.execute_script(TRAIN_REACH), 30, "the Train tab")
        page.save_screenshot(str(ARTIFACTS / "2d-train-phone.png"))
        assert 0 < reach["start"] - reach["upload"] < 1_500 and not reach["sideways"], reach
        open_options(page)
        assert page.execute_script(TRAIN_REACH)["start"] - reach["start"] > 1_500  # the options were closed
    open_tab(page, "Ask")


def train_a_run(browser) -> None:
    """The server's first job, from the Train tab; its run is listed in the run picker without a tab switch."""
    open_tab(browser, "Train")
    idle = wait_for(lambda: find(browser, "#train-bar [role=progressbar]"), 30, "the progress bar")
    assert idle.get_attribute("aria-valuenow") == "0"  # no job yet: the bar is drawn empty, not full
    assert find(browser, "#train-bar [role=progressbar] > div").size["width"] == 0
    for name, value in (("max_steps", 4), ("per_device_train_batch_size", 4), ("max_seq_length", 128),
                        ("doc_stride", 32), ("max_eval_samples", 10)):
        set_number(browser, name, value)
    find(browser, "#train-start").click()
    started = wait_for(lambda: re.match(r"Started job (\d+)", find(browser, "#train-message textarea")
                                        .get_attribute("value")), 30, "the job to start")
    wait_for(lambda: f"Job {started[1]}: finished" in find(browser, "#train-status textarea").get_attribute("value"),
             180, "the training job to finish")
    browser.save_screenshot(str(ARTIFACTS / "2-train.png"))
    find(browser, "#train-status").screenshot(str(ARTIFACTS / "2b-train-status.png"))
    find(browser, "#train-run input").click()  # the pickers refresh when a job ends
    option = wait_for(lambda: next((o for o in find_all(browser, "#train-run [data-testid=dropdown-option]")
                                    if "on its training data" in o.text), None), 30, "the new run in the run picker")
    option.click()
    wait_for(lambda: find(browser, "#train-run-note"), 30, "the run's history")
    time.sleep(1)
    assert not find(browser, "#train-resume").is_enabled()  # a finished run: nothing to resume
    browser.save_screenshot(str(ARTIFACTS / "2c-train-history.png"))


def browse_errors(browser) -> None:
    """The newest run is picked and loaded; a question shows its gold and predicted spans, readable on a phone."""
    open_tab(browser, "Errors")
    wait_for(lambda: "10 questions" in find(browser, "#errors-summary textarea").get_attribute("value"), 60,
             "the run summary")
    question = wait_for(lambda: find(browser, "#errors-table [data-testid=cell-0-2]"), 60, "the question table")
    assert question.text.strip()
    question.click()
    wait_for(lambda: find(browser, "#errors-detail .highlighted"), 60, "gold and predicted spans")
    browser.save_screenshot(str(ARTIFACTS / "3-errors.png"))
    assert browser.execute_script(COVERED_LABELS) == []  # the plots two in a row
    with phone(browser):  # readable columns (the table scrolls sideways), no text under arrows
        shown = browser.execute_script(PHONE_ERRORS)
        cut = words_cut(browser, "#errors-table")
        find(browser, "#errors-table").screenshot(str(ARTIFACTS / "3b-errors-phone-table.png"))
    assert shown["columns"][:2] == ["question", "prediction"] and shown["narrowest"] >= 40, shown
    assert shown["textClearsArrow"] and shown["scoreShown"] and shown["contextBreak"] == "normal", shown
    assert cut == []


def test_train_then_browse_its_errors(page):
    train_a_run(page)
    browse_errors(page)


def test_a_stopped_run_is_resumed_from_the_train_tab(page):
    """The run cancelled before the server started, resumed from its checkpoint."""
    open_tab(page, "Train")
    find(page, "#train-run input").click()
    wait_for(lambda: next(o for o in find_all(page, "#train-run [data-testid=dropdown-option]")
                          if label_parts(o.text)[0] == STOPPED and "cancelled, no final model" in o.text), 30,
             "the stopped run in the run picker").click()
    wait_for(lambda: find(page, "#train-resume").is_enabled(), 30, "Resume to be offered")
    find(page, "#train-resume").click()
    resumed = wait_for(lambda: re.match(rf"Resumed {STOPPED} as job (\d+)",
                                        find(page, "#train-message textarea").get_attribute("value")),
                       30, "the resumed job")
    assert not find(page, "#train-resume").is_enabled()  # greyed out while the job runs, as Start is
    wait_for(lambda: f"Job {resumed[1]}: finished" in find(page, "#train-status textarea").get_attribute("value"),
             120, "the resumed job to finish")
    page.save_screenshot(str(ARTIFACTS / "4-resumed.png"))
    # Found by a tester: the Errors tab kept the run it had picked before (test_train_then_browse_its_errors), and
    # Send to Ask sent that; a job's end picks its run there, as a fresh load would.
    open_tab(page, "Errors")
    wait_for(lambda: STOPPED in label_parts(find(page, "#errors-run input").get_attribute("value")), 30,
             f"the resumed run in the Errors tab, not {find(page, '#errors-run input').get_attribute('value')}")
    wait_for(lambda: "4 questions" in find(page, "#errors-summary textarea").get_attribute("value"), 60,
             "the resumed run's summary")


def start_long_job(page, options: tuple[tuple[str, int], ...], timeout: float):
    """Start a job of 2,000 steps with these options from the Train tab: the 'Started job N' match, and a reader of
    the Message box."""
    for name, value in (("max_steps", 2000), *options):
        set_number(page, name, value)
    find(page, "#train-start").click()
    message = lambda: find(page, "#train-message textarea").get_attribute("value")  # noqa: E731
    return wait_for(lambda: re.match(r"Started job (\d+)", message()), timeout, "the job to start"), message


def test_cancelling_gives_way_to_how_the_job_ended(page):
    """'Cancelling after the current step.' stays in the Message box only while it is true."""
    open_tab(page, "Train")
    started, message = start_long_job(page, (("per_device_train_batch_size", 4), ("max_seq_length", 128),
                                             ("doc_stride", 32)), 30)
    find(page, "#train-cancel").click()
    wait_for(lambda: message() == "Cancelling after the current step." or message().startswith(
        f"Job {started[1]} cancelled"), 30, "the cancel to be taken")
    wait_for(lambda: message().startswith(f"Job {started[1]} cancelled"), 60, "the job's end in the Message box")


JOB_BUTTONS = ("start", "quick", "cancel")
IDLE, RUNNING = {"start": True, "quick": True, "cancel": False}, {"start": False, "quick": False, "cancel": True}


def job_buttons(driver) -> dict[str, bool]:
    """Which of the Train tab's job buttons take a click now."""
    return {name: find(driver, f"#train-{name}").is_enabled() for name in JOB_BUTTONS}


def show_train_tab(driver, url: str) -> None:
    driver.get(url)
    wait_for(lambda: find(driver, "#ask-question textarea"), 60, "the Ask tab")
    open_tab(driver, "Train")


def test_the_job_buttons_show_whether_a_job_runs_in_every_tab(page):
    """Start and Quick fine-tune take a click only while no job runs, Cancel only while one does: in the tab that
    started the job, in a second tab, and after a reload, as the status poll finds the job."""
    url, first = page.current_url, page.current_window_handle
    open_tab(page, "Train")
    wait_for(lambda: job_buttons(page) == IDLE, 30, f"the buttons of an idle server, not {job_buttons(page)}")
    started, message = start_long_job(page, (("per_device_train_batch_size", 16), ("max_seq_length", 256),
                                             ("doc_stride", 64)), 60)
    wait_for(lambda: job_buttons(page) == RUNNING, 10, "Start to give way to Cancel in the tab that started it")
    page.switch_to.new_window("tab")
    try:
        show_train_tab(page, url)
        wait_for(lambda: job_buttons(page) == RUNNING, 30, "a second tab to show the running job")
        page.refresh()  # a reload as a visitor's: loading the URL again after it never returned in Chromium 150
        wait_for(lambda: find(page, "#ask-question textarea"), 60, "the Ask tab")
        open_tab(page, "Train")
        wait_for(lambda: job_buttons(page) == RUNNING, 30, "a reloaded tab to show the running job")
        page.save_screenshot(str(ARTIFACTS / "5-train-running-second-tab.png"))
        find(page, "#train-cancel").click()  # a local server lets any tab cancel
        wait_for(lambda: f"Job {started[1]}: cancelled" in find(page, "#train-status textarea").get_attribute("value"),
                 120, "the job to end")
        wait_for(lambda: job_buttons(page) == IDLE, 10, "the second tab to offer Start again")
    finally:
        page.close()
        page.switch_to.window(first)
    wait_for(lambda: job_buttons(page) == IDLE, 10, "the first tab to offer Start again")
