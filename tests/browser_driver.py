r"""The service's page in Debian's headless Chromium, driven by Selenium 4 through Debian's chromedriver.

Both programs come from Debian's packages `chromium` and `chromium-driver` (`make test` installs
them when it runs as root on Debian). Their paths are handed to Selenium, so Selenium Manager
never runs and nothing is downloaded.

Besides the test, this makes the README's screenshot of the page after an answer:

    python tests/browser_driver.py http://127.0.0.1:3000/ \
        "a gripping, beautifully acted film, though the second half drags." docs/page.png
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PACKAGES = "chromium chromium-driver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]
ANSWER_TIMEOUT_S = 30


def chromium_paths() -> tuple[str, str]:
    """(browser, driver): Debian's `chromium` and `chromedriver` on PATH."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
        raise RuntimeError(f"{' and '.join(missing)} not found on PATH: install Debian's packages {PACKAGES} "
                           "(make test does it when run as root)")
    return browser, driver


@contextmanager
def headless_chromium(profile: Path, window: tuple[int, int] = (900, 640)) -> Iterator[webdriver.Chrome]:
    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]:
        options.add_argument(flag)
    # Chrome's performance log carries DevTools' network events: every URL the page asks for.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """The URLs requested since the last call (reading the performance log empties it)."""
    messages = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]


def analyse(driver: webdriver.Chrome, url: str, text: str, *, paste: bool = False) -> dict[str, Any]:
    """Open the page, type `text` as a user would (`paste`: put it in the box at once, as pasting a
    long review does), press Analyse, wait for the answer; what the page shows."""
    driver.get("about:blank")  # leave the start tab's new-tab page (it loads chrome:// resources)
    requested_urls(driver)  # and forget its requests
    driver.get(url)
    box = driver.find_element(By.ID, "text")
    box.clear()
    if paste:
        driver.execute_script("arguments[0].value = arguments[1];", box, text)
    else:
        box.send_keys(text)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, ANSWER_TIMEOUT_S).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state"))
    marks = driver.find_elements(By.CSS_SELECTOR, "#words mark")
    sentences = driver.find_elements(By.CSS_SELECTOR, "#words .sentence")
    return {
        "shown": driver.find_element(By.ID, "words").get_attribute("textContent"),
        "details": driver.find_element(By.ID, "details").text,
        "sentences": [sentence.get_attribute("textContent") for sentence in sentences],
        "sentence_scores": [float(sentence.get_attribute("data-score")) for sentence in sentences],
        "state": driver.find_element(By.TAG_NAME, "body").get_attribute("data-state"),
        "label": driver.find_element(By.ID, "label").text,
        "error": driver.find_element(By.ID, "error").text,
        "marked": [mark.text for mark in marks],
        "scores": [float(mark.get_attribute("data-score")) for mark in marks],
        "methods": [option.get_attribute("value") for option in driver.find_elements(By.CSS_SELECTOR, "#method option")],
        "requests": requested_urls(driver),
    }


def drive_index_page(url: str, text: str, tmp_dir: Path, screenshot: Path | None = None, *,
                     paste: bool = False) -> dict[str, Any]:
    """`analyse` in a fresh browser; with `screenshot`, the page after the answer is saved there as PNG."""
    profile = tmp_dir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    with headless_chromium(profile) as driver:
        outcome = analyse(driver, url, text, paste=paste)
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
    return outcome


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python tests/browser_driver.py URL TEXT OUT.png")
    with tempfile.TemporaryDirectory() as scratch:
        result = drive_index_page(sys.argv[1], sys.argv[2], Path(scratch), screenshot=Path(sys.argv[3]))
    print(json.dumps({key: result[key] for key in ("state", "label", "marked", "error")}))
