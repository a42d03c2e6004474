"""The recording console in a real headless Chromium, against the twin's collection stack.

`vla-robot collect --robot sim --console ... --manual` runs as its own process (twin, cameras,
scripted expert, recorder and console node over DDS); Selenium drives Debian's chromium
through chromium-driver. The test starts, saves and discards episodes by clicking and with the
keyboard shortcuts, checks the store afterwards, presses the e-stop while the expert is driving
and checks, from its own ROS subscription, that the arm holds. Screenshots are kept in
``out/test-artifacts/`` (or ``$VLA_TEST_ARTIFACTS``).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# What this machine needs for a sandbox-less, offline, throwaway browser.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]


def artifacts() -> Path:
    path = Path(os.environ.get("VLA_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def collect_stack(tmp_path_factory):
    """The collection stack with its console, as an operator starts it; yields (console URL, store path)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "needs Debian's chromium and chromium-driver: `make test` installs them (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tmp_path = tmp_path_factory.mktemp("console")
    store = tmp_path / "demos.zarr"
    cmd = [sys.executable, "-m", "vla_robot.cli", "collect", "--robot", "sim", "--console", "127.0.0.1:0", "--manual",
           "--out", str(store), "--size", "128x96", "--speed", "1.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    found = threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line)
            if "recording console: http" in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not found.wait(120):
            raise AssertionError("the collection stack did not serve its console:\n" + "".join(lines[-40:]))
        url = re.search(r"recording console: (http://\S+)", "".join(lines)).group(1)
        yield url, store
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines[-40:])


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vla-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class JointWatch:
    """The test's own view of the arm: a ROS subscription to joint_states, independent of the console."""

    def __init__(self):
        from rclpy.node import Node
        from sensor_msgs.msg import JointState

        from vla_robot.ros.executor import ComposedProcess
        from vla_robot.ros.qos import SENSOR_QOS

        self.process = ComposedProcess(threads=2)
        node = self.process.add(Node("browser_test_watch", context=self.process.context))
        self.states: list[tuple[float, np.ndarray]] = []
        node.create_subscription(JointState, "joint_states",
                                 lambda m: self.states.append((time.monotonic(), np.asarray(m.position))), SENSOR_QOS)
        self.process.start()

    def window(self, start: float, n: int, timeout_s: float = 30.0) -> np.ndarray:
        """The first ``n`` joint states received after monotonic time ``start``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = [q for t, q in list(self.states) if t > start]
            if len(got) >= n:
                return np.stack(got[:n])
            time.sleep(0.05)
        raise AssertionError(f"fewer than {n} joint states in {timeout_s} s")

    def close(self):
        self.process.shutdown()


def wait(driver, what, predicate, timeout_s=60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(lambda d: predicate(d))
    except Exception as exc:
        shot = artifacts() / "console_browser_failure.png"
        driver.save_screenshot(str(shot))
        raise AssertionError(f"browser: timed out waiting for {what} (screenshot {shot})") from exc


def text(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector).text


def steps(driver) -> int:
    match = re.match(r"(\d+) @", text(driver, "#stat-steps"))
    return int(match.group(1)) if match else 0


def badge(driver) -> str:
    return text(driver, "#state")


def rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#episodes tbody tr")


def click(driver, selector):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, selector).click()


def press(driver, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def record(driver, min_steps, begin):
    """Begin an episode (a click or a key), wait until it is recording with at least ``min_steps`` steps."""
    begin()
    wait(driver, "the REC badge", lambda d: badge(d) == "● REC")
    wait(driver, f"{min_steps} recorded steps", lambda d: steps(d) >= min_steps)


def test_operator_records_saves_discards_and_stops_from_the_browser(collect_stack, browser):
    from vla_robot.data import EpisodeStore

    url, store_path = collect_stack
    d = browser
    d.get(url)
    wait(d, "the recorder to report IDLE", lambda d: badge(d) == "IDLE")
    wait(d, "the twin's instruction", lambda d: d.find_element("id", "instruction").get_attribute("value"))
    wait(d, "live camera frames", lambda d: d.execute_script(
        "return [...document.querySelectorAll('#cameras img')].every(i => i.naturalWidth > 0)"))
    assert d.execute_script("return document.querySelectorAll('#cameras img').length") == 2

    # 1. start and save as a success, by clicking
    instruction0 = d.find_element("id", "instruction").get_attribute("value")
    record(d, 15, lambda: click(d, "#btn-start"))
    click(d, "#btn-save-success")
    wait(d, "the saved episode in the list", lambda d: len(rows(d)) == 1)
    assert "success" in rows(d)[0].text and instruction0 in rows(d)[0].text

    # 2. space starts (the terminal console's key), discard by clicking: nothing is added
    wait(d, "IDLE after the save", lambda d: badge(d) == "IDLE")
    record(d, 5, lambda: press(d, " "))
    click(d, "#btn-discard")
    wait(d, "IDLE after the discard", lambda d: badge(d) == "IDLE")
    assert "episode discarded" in text(d, "#events")

    # 3. space starts, f saves as a failure
    instruction2 = d.find_element("id", "instruction").get_attribute("value")
    record(d, 10, lambda: press(d, " "))
    press(d, "f")
    wait(d, "the failed episode in the list", lambda d: len(rows(d)) == 2)
    assert "failure" in rows(d)[0].text and "success" in rows(d)[1].text
    d.save_screenshot(str(artifacts() / "console_browser.png"))

    # 4. playback: clicking the first saved episode shows its frames
    rows(d)[-1].click()
    wait(d, "the player's frames", lambda d: d.execute_script(
        "const i = [...document.querySelectorAll('#player-cameras img')];"
        "return i.length === 2 && i.every(x => x.complete && x.naturalWidth > 0)"))
    assert "Episode 0" in text(d, "#player-title") and "success" in text(d, "#player-title")
    click(d, "#player-play")
    wait(d, "playback to advance", lambda d: not text(d, "#player-pos").startswith("1 /"))
    d.save_screenshot(str(artifacts() / "console_browser_playback.png"))

    # the store holds exactly what the operator kept, labelled as clicked
    store = EpisodeStore.open(store_path, mode="r")
    assert store.num_episodes == 2
    metas = [store.episode_meta(i) for i in range(2)]
    assert [m["success"] for m in metas] == [True, False]
    assert [m["instruction"] for m in metas] == [instruction0, instruction2]
    assert store.episode_length(0) >= 15 and store.episode_length(1) >= 10


class ArmMovedAfterEStop(AssertionError):
    """The one failure the e-stop test expects until the latched stop of issue #14 lands."""


@pytest.mark.xfail(strict=True, raises=ArmMovedAfterEStop,
                   reason="issue #14: the twin's e-stop drops one command and does not latch, so the teleop's next "
                          "command moves the arm again; the controlled, latched stop (helper C) fixes it. Strict: "
                          "remove this mark when it lands")
def test_estop_from_the_browser_holds_the_arm_while_the_teleop_drives(collect_stack, browser):
    url, _ = collect_stack
    d = browser
    d.get(url)
    wait(d, "the recorder to report IDLE", lambda d: badge(d) == "IDLE")
    watch = JointWatch()
    try:
        record(d, 5, lambda: click(d, "#btn-start"))
        moving = watch.window(time.monotonic(), 8)
        assert np.ptp(moving, axis=0).max() > 0.01, "the expert was not moving the arm: the hold check would prove nothing"
        assert d.execute_script("const r = document.getElementById('estop').getBoundingClientRect();"
                                "return r.top >= 0 && r.bottom <= innerHeight && r.width >= 100")  # always in view
        click(d, "#estop")
        wait(d, "the e-stop answer", lambda d: "E-STOP sent" in text(d, "#banner"))
        d.save_screenshot(str(artifacts() / "console_browser_estop.png"))
        settled = time.monotonic() + 1.0  # a controlled stop may decelerate first
        drift = np.ptp(watch.window(settled, 15), axis=0)
        click(d, "#btn-discard")
        wait(d, "IDLE after discarding the stopped episode", lambda d: badge(d) == "IDLE")
        if drift.max() >= 2e-3:
            raise ArmMovedAfterEStop(f"the arm moved after the e-stop: per-joint range {np.round(drift, 4)}")
    finally:
        watch.close()
