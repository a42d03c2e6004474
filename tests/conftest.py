"""Test-wide environment: DDS on loopback with a private domain, MuJoCo offscreen on EGL."""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


# After the last test, a process that has held many EGL contexts, rclpy contexts and torch
# threads can crash inside native destructors at interpreter teardown (seen once in a full
# run: every test passed, then SIGSEGV). The verdict is already known and printed by then,
# so end the process with pytest's own exit status instead of running those destructors.
import sys

import pytest

_exit_status: int | None = None


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _exit_status is not None and os.environ.get("VLA_ROBOT_TEST_HARD_EXIT", "1") == "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)


@pytest.fixture
def composed():
    """A composed ROS process (4 executor threads) pinned to one core, as the sim stacks run.

    Unpinned on two cores, the threads hand the GIL across CPUs on every message: the
    bad-input test then burned 9 s of CPU instead of 2, callbacks ran seconds late, and about
    one run in six failed on timing alone.
    """
    from vla_robot.ros.executor import ComposedProcess, OneCorePin

    pin = OneCorePin()
    process = ComposedProcess(threads=4)
    try:
        yield process
    finally:
        process.shutdown()
        pin.release()


FAILED_ATTEMPTS = os.environ.get("VLA_TEST_FAILED_ATTEMPTS", "out/test-artifacts/failed_attempts.log")


def pytest_sessionstart(session):
    path = session.config.rootpath / FAILED_ATTEMPTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell in teardown whether the test failed.

    Every failed attempt, including one that ``--reruns`` then passes, is written with its
    traceback and node logs to ``out/test-artifacts/failed_attempts.log`` (``make test`` lists
    them): a rerun hides a flake from the summary, not from whoever fixes it.
    """
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.when == "teardown":  # the call's report has its node logs by now (process_launch)
        failed = [r for r in (getattr(item, "rep_setup", None), getattr(item, "rep_call", None), report)
                  if r is not None and r.failed]
        if failed:
            path = item.config.rootpath / FAILED_ATTEMPTS
            with open(path, "a") as f:
                for r in failed:
                    f.write(f"=== {item.nodeid} ({r.when}) failed\n{r.longreprtext}\n")
                    for title, text in r.sections:
                        f.write(f"--- {title}\n{text}\n")


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory):
    """ros2_ws built once per test session with colcon (tests/process_launch.py)."""
    from process_launch import colcon_build

    return colcon_build(tmp_path_factory.mktemp("colcon"))


@pytest.fixture
def process_launch(colcon_install, tmp_path, request):
    """Start launch files' nodes as separate processes (``process_launch.launch(name, args)``); every
    node is stopped (SIGINT, SIGTERM, SIGKILL) at teardown and its log is attached to a failing test."""
    from process_launch import ProcessLaunch

    launcher = ProcessLaunch(colcon_install, tmp_path / "nodes")
    try:
        yield launcher
    finally:
        codes = launcher.shutdown()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:  # shown under the failure in pytest's summary
            report.sections.append(("node logs", f"exit codes {codes}\n{launcher.logs()}"))
