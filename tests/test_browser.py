"""End to end: launch `python app.py` on localhost and drive it in headless Chromium (ask, train, browse errors)."""

from __future__ import annotations

import os
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

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                        "chromium-driver); .ci/run installs them")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # the page is still rendering: elements come and go
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir) -> Iterator[str]:
    port, log = free_port(), tmp_path_factory.mktemp("server") / "app.log"
    env = {**os.environ, "QA_RUNS_DIR": str(tmp_path_factory.mktemp("runs")), "QA_DEFAULT_MODEL": str(tiny_model_dir),
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


def open_tab(driver, name: str) -> None:
    next(b for b in find_all(driver, "button[role=tab]") if b.text.strip() == name).click()


def set_number(driver, name: str, value: int) -> None:
    field = find(driver, f"#train-{name} input")
    field.clear()
    field.send_keys(str(value))


def test_ask_train_and_browse_errors(server, browser):
    browser.get(server)
    wait_for(lambda: find(browser, "#ask-question textarea"), 60, "the Ask tab")
    find(browser, "#ask-context textarea").send_keys(CONTEXT)
    find(browser, "#ask-question textarea").send_keys("Who designed the lens?")
    find(browser, "#ask-button").click()
    answer = wait_for(lambda: find(browser, "#ask-answer .highlighted .text").text, 60, "the highlighted answer")
    browser.save_screenshot(str(ARTIFACTS / "1-ask.png"))
    assert answer.strip() and answer.strip() in CONTEXT
    assert "<script>" in find(browser, "#ask-answer").text  # shown as text
    assert browser.execute_script("return window.injected") is None  # never run
    assert "probability" in find(browser, "#ask-score textarea").get_attribute("value")

    open_tab(browser, "Train")
    for name, value in (("max_steps", 4), ("per_device_train_batch_size", 4), ("max_seq_length", 128),
                        ("doc_stride", 32), ("max_eval_samples", 10)):
        set_number(browser, name, value)
    find(browser, "#train-start").click()
    wait_for(lambda: "finished" in find(browser, "#train-status textarea").get_attribute("value"), 180,
             "the training job to finish")
    browser.save_screenshot(str(ARTIFACTS / "2-train.png"))
    assert "Started job 1" in find(browser, "#train-message textarea").get_attribute("value")

    open_tab(browser, "Errors")  # the newest run is picked and loaded
    wait_for(lambda: "10 questions" in find(browser, "#errors-summary textarea").get_attribute("value"), 60,
             "the run summary")
    question = wait_for(lambda: find(browser, "#errors-table [data-testid=cell-0-2]"), 60, "the question table")
    assert question.text.strip()
    question.click()
    wait_for(lambda: find(browser, "#errors-detail .highlighted"), 60, "gold and predicted spans")
    browser.save_screenshot(str(ARTIFACTS / "3-errors.png"))
