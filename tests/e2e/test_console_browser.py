"""The web console in a real browser: Debian's Chromium, headless, driven by Selenium through
chromedriver, against `qwen-edit local serve`. It runs in a loopback-only network namespace, so
nothing the browser does in the background can leave the machine.

Skipped, with the reason, when Chromium or chromedriver is missing (`.ci/run` installs both).
QWEN_EDIT_CONSOLE_SCREENSHOT=docs/console.png saves the job view there (the README's picture).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest
from loopback_only import inside, outside, rerun_in_namespace
from PIL import Image

from qwen_edit_cli.demo import sample_photo

from processes import serving

ROOT = Path(__file__).resolve().parents[2]
KEY = "qe-console-tenant"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"no browser for the console tests: {', '.join(MISSING)} missing "
    "(apt-get install chromium chromium-driver; .ci/run does)",
)
SERVE = [
    *(sys.executable, "-m", "qwen_edit_cli.main", "local", "serve"),
    *("--port", "0", "--poll-interval", "1", "--api-key", KEY),
]
XSS = "<img src=x onerror=alert(1)>"


@outside
def test_the_console_works_in_chromium_in_a_loopback_only_namespace():
    rerun_in_namespace(__file__)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serving(SERVE, tmp_path_factory.mktemp("serve")) as ready:
        yield ready


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_for(condition, timeout=30.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def shown(driver, element_id):
    return "hidden" not in (by_id(driver, element_id).get_attribute("class") or "").split()


def set_faults(served, **faults):
    root = served["dashscope_url"].removesuffix("/api/v1")
    httpx.put(f"{root}/_emulator/faults", json=faults).raise_for_status()


def console_url(served):
    return served["api_url"] + "/console"


def fill_form(driver, model, prompt, **fields):
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, "model")).select_by_value(model)
    for name, value in {"prompt": prompt, "n": "", "size": "", "seed": "", **fields}.items():
        box = by_id(driver, name)
        box.clear()
        if value:
            box.send_keys(str(value))


def submit(driver):
    before = by_id(driver, "formnote").text
    by_id(driver, "go").click()
    return wait_for(
        lambda: (
            (by_id(driver, "go").is_enabled() and by_id(driver, "formnote").text != before)
            or by_id(driver, "formerr").text
            or driver.execute_script(
                "return [...document.querySelectorAll('[data-err]')].some(e => e.textContent)"
            )
        ),
        what="an answer to the submit",
    )


def accepted_id(driver):
    note = wait_for(
        lambda: (
            by_id(driver, "formnote").text.startswith("accepted: ")
            and by_id(driver, "formnote").text
        )
    )
    return note.removeprefix("accepted: ")


def row_status(driver, job_id):
    return driver.execute_script(
        "const r = document.querySelector(`tr[data-id='${arguments[0]}']`);"
        "return r && r.dataset.status;",
        job_id,
    )


@inside
def test_a_wrong_key_is_refused_and_the_right_one_kept_for_the_tab(served, browser):
    root = served["api_url"].removesuffix("/v1")
    browser.get(root + "/")  # the local stack's root opens the console
    assert browser.current_url == console_url(served)
    wait_for(lambda: shown(browser, "keybox"), what="the key prompt")
    by_id(browser, "key").send_keys("not-a-key\n")
    wait_for(lambda: "refused" in by_id(browser, "keyerr").text, what="the 401 message")
    assert browser.execute_script("return sessionStorage.length") == 0
    by_id(browser, "key").send_keys(KEY + "\n")
    wait_for(lambda: shown(browser, "app"), what="the console after the key")
    assert browser.execute_script("return sessionStorage.getItem('qwen-edit.key')") == KEY
    assert browser.execute_script("return localStorage.length") == 0
    assert KEY not in browser.current_url
    wait_for(lambda: len(by_id(browser, "model").get_attribute("value")) > 0, what="the models")


@inside
def test_an_uploaded_png_is_edited_live_and_compared(served, browser, tmp_path):
    png = tmp_path / "photo.png"
    Image.open(io.BytesIO(sample_photo())).save(png, format="PNG")  # the demo's stand-in photo
    set_faults(served, sync_latency_s=3)  # long enough to watch the job before it succeeds
    by_id(browser, "files").send_keys(str(png))
    wait_for(lambda: "1 image" in by_id(browser, "drop").text, what="the chosen image")
    fill_form(browser, "qwen-image-edit-plus", "Turn it into a watercolor", seed=7)
    submit(browser)
    job_id = accepted_id(browser)
    seen = [wait_for(lambda: row_status(browser, job_id), what="the new job in the list")]
    assert seen[0] == "queued"
    # The list refreshes itself while the job is not final: no reload, no click.
    while seen[-1] != "succeeded":
        status = wait_for(lambda: row_status(browser, job_id), what="the job's row")
        if status != seen[-1]:
            seen.append(status)
        assert status in ("queued", "running", "succeeded"), seen
        time.sleep(0.2)
    set_faults(served, sync_latency_s=0.05)

    browser.find_element("css selector", f"tr[data-id='{job_id}']").click()
    wait_for(lambda: shown(browser, "job") and by_id(browser, "jbody").text, what="the job view")
    loaded = """return [...document.querySelectorAll(arguments[0])]
        .map(i => i.complete && i.naturalWidth).every(Boolean) &&
        document.querySelectorAll(arguments[0]).length > 0"""
    wait_for(lambda: browser.execute_script(loaded, ".gallery img"), what="the images loading")
    assert browser.execute_script("return document.querySelector('.compare .after').naturalWidth")
    assert by_id(browser, "slider").get_attribute("type") == "range"  # one input: before/after
    assert by_id(browser, "jprompt").text == "Turn it into a watercolor"
    assert "stored" in browser.find_element("css selector", "ol.timeline").text
    assert "seed\n7" in browser.find_element("css selector", "#jbody dl").text
    screenshot = os.environ.get("QWEN_EDIT_CONSOLE_SCREENSHOT")
    if screenshot:
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(ROOT / screenshot))

    by_id(browser, "again").click()  # "edit again" prefills the form with the job's request
    assert by_id(browser, "prompt").get_attribute("value") == "Turn it into a watercolor"
    assert by_id(browser, "seed").get_attribute("value") == "7"
    assert "1 image" in by_id(browser, "drop").text
    by_id(browser, "back").click()
    wait_for(lambda: shown(browser, "list"), what="the list")


@inside
def test_a_queued_job_is_canceled(served, browser):
    # qwen-image-2.0-pro's family may be called twice a minute: the second job waits in line.
    ids = []
    for prompt in ("first lighthouse", "second lighthouse"):
        fill_form(browser, "qwen-image-2.0-pro", prompt)
        submit(browser)
        ids.append(accepted_id(browser))
        wait_for(lambda: row_status(browser, ids[-1]), what="the job in the list")
    browser.find_element("css selector", f"tr[data-id='{ids[1]}']").click()
    wait_for(lambda: "queued" in by_id(browser, "jtitle").text, what="the queued job")
    by_id(browser, "cancel").click()
    wait_for(lambda: "canceled" in by_id(browser, "jtitle").text, what="the cancel")
    assert not shown(browser, "cancel")  # a final job has nothing to cancel
    by_id(browser, "back").click()


@inside
def test_a_422_lands_next_to_the_field_it_names(served, browser):
    fill_form(browser, "qwen-image-plus", "a fox", n=9)
    submit(browser)
    errors = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('[data-err]')]"
        ".map(e => [e.dataset.err, e.textContent]))"
    )
    assert errors["n"].startswith("n: ") and all(not v for k, v in errors.items() if k != "n")
    assert not by_id(browser, "formerr").text


@inside
def test_a_prompt_of_markup_shows_as_text_and_runs_nothing(served, browser):
    from selenium.common.exceptions import NoAlertPresentException

    fill_form(browser, "qwen-image-plus", XSS)
    submit(browser)
    job_id = accepted_id(browser)
    browser.get(console_url(served) + "#job/" + job_id)
    prompt = "const p = document.getElementById('jprompt'); return p && p.textContent"
    wait_for(lambda: browser.execute_script(prompt) == XSS, what="the prompt as text")
    assert not browser.find_elements("css selector", "img[src='x']")
    time.sleep(0.5)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - no dialog opened
