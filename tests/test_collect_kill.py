"""Kill test: SIGKILL of the recording process mid-episode leaves every earlier episode
intact, and a restarted recorder goes on appending to the same store."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def collect(out, episodes, seed):
    return subprocess.Popen(
        [sys.executable, "-m", "vla_robot.cli", "collect", "--episodes", str(episodes), "--out", out, "--size", "64x64",
         "--speed", "3", "--seed", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ROS_DOMAIN_ID": str(int(os.environ.get("ROS_DOMAIN_ID", "40")) + 1)},
    )


def committed(out):
    from vla_robot.data import EpisodeStore

    try:
        return EpisodeStore.open(out).num_episodes
    except Exception:
        return 0


def test_sigkill_mid_episode_keeps_earlier_episodes_and_restart_appends(tmp_path):
    from vla_robot.data import EpisodeStore
    from vla_robot.data.cli import main as vla_data

    out = str(tmp_path / "kill.zarr")
    proc = collect(out, 5, seed=0)
    deadline = time.monotonic() + 90
    while committed(out) < 1:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no episode committed in time"
        time.sleep(0.2)
    before = EpisodeStore.open(out)
    n_before = before.num_episodes
    snapshot = [before.read_episode(i) for i in range(n_before)]
    time.sleep(1.0)  # well inside the next episode
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    after = EpisodeStore.open(out)
    n_killed = after.num_episodes
    assert n_killed >= n_before
    for i, ep in enumerate(snapshot):
        again = after.read_episode(i)
        for key, value in ep.items():
            np.testing.assert_array_equal(again[key], value, err_msg=f"episode {i} {key} changed")

    restart = collect(out, 1, seed=7)
    output, _ = restart.communicate(timeout=120)
    assert restart.returncode == 0, output
    final = EpisodeStore.open(out)
    assert final.num_episodes == n_killed + 1
    for i, ep in enumerate(snapshot):
        np.testing.assert_array_equal(final.read_episode(i)["state"], ep["state"])
    assert vla_data(["validate", out]) == 0
