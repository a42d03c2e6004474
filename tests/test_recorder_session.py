"""EpisodeRecorder without ROS: silent streams, status fields, write errors that fail an episode at
once (a real EFBIG from the kernel, no mocks), gamepad edges and the default button mapping."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from vla_robot.recorder.gamepad import GamepadButtons, GamepadEpisodeControl
from vla_robot.recorder.health import StreamHealth


def test_a_silent_stream_is_named_after_stale_after_s_and_a_stall_of_the_watcher_is_held():
    health = StreamHealth(("state", "images/wrist"), stale_after_s=0.5)
    health.seen("state", 10.0)
    health.seen("images/wrist", 10.0)
    assert health.silent(10.45) == {}
    health.seen("state", 10.45)
    assert health.silent(10.51) == {"images/wrist": pytest.approx(0.51)}  # 0.5 s + one 20 Hz tick < 1 s
    assert health.stale_events["images/wrist"] == 1
    health.hold(11.5)  # the recorder itself stalled: keep the verdict while its queue drains
    assert set(health.silent(11.4)) == {"images/wrist"}
    health.seen("images/wrist", 11.45)
    health.seen("state", 11.45)
    assert health.silent(11.6) == {}
    health.watch_from(20.0)  # an episode started: a stream never seen since is silent too
    fresh = StreamHealth(("depth/front",), 0.5)
    fresh.watch_from(20.0)
    assert fresh.silent(20.6) == {"depth/front": pytest.approx(0.6)}


def test_gamepad_acts_on_rising_edges_only_and_defaults_leave_the_teleop_buttons_alone():
    pad = GamepadEpisodeControl()
    assert pad.update([0] * 8 + [1]) == []  # the first message is the baseline
    assert pad.update([0] * 7 + [1]) == ["start"]
    assert pad.update([0] * 7 + [1]) == []  # held
    assert pad.update([0, 0, 1, 1, 0, 0, 1, 0]) == ["save_success", "save_failure", "discard"]
    assert pad.update([1, 1, 0, 0, 0, 1]) == []  # gripper + deadman; a short message has no button 7
    assert GamepadEpisodeControl().update([0] * 3) == []

    from vla_robot.ros.teleop_node import PARAMS as TELEOP
    from vla_robot.teleop.inputs import JoyMapping

    joy = JoyMapping()
    configs = yaml.safe_load(open("ros2_ws/src/vla_robot_bringup/config/teleop.yaml"))
    deadman = configs["teleop"]["ros__parameters"].get("deadman_button", TELEOP["deadman_button"])
    reserved = {"deadman": deadman, "gripper open": joy.gripper_open_button, "gripper close": joy.gripper_close_button}
    assert GamepadButtons().collisions(reserved) == []
    assert GamepadButtons(start=5).collisions(reserved) == ["start = button 5 = deadman"]
    with pytest.raises(ValueError, match="must differ"):
        GamepadButtons(save_success=2, save_failure=2)
    with pytest.raises(ValueError, match="index >= 0 or -1"):
        GamepadButtons(discard=-3)
    assert GamepadEpisodeControl(GamepadButtons(start=-1)).update([1] * 8) == []


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from vla_robot.data import EpisodeStore
    from vla_robot.data.synthetic import demo_schema
    from vla_robot.recorder.session import EpisodeRecorder, RecorderStateError

    url = sys.argv[1]
    store = EpisodeStore.create(url, demo_schema(width=96, height=72, depth=False, encoding="png"), shard_frames=8)
    rec = EpisodeRecorder(store, ("front", "wrist"), 30.0, max_wait_s=0.2)
    rec.set_instruction("touch the grinning face")
    rng = np.random.default_rng(0)
    clock = [1000.0]

    def feed(seconds):
        for _ in range(int(seconds * 30)):
            t = clock[0]
            rec.add_state(t, np.full(7, 0.02, np.float32))
            rec.add_action(t + 0.001, np.full(7, 0.02, np.float32))
            for cam in ("front", "wrist"):
                rec.add_image(cam, t + 0.004, rng.integers(0, 256, (72, 96, 3), dtype=np.uint8))
            clock[0] += 1 / 30
            rec.tick()
            time.sleep(0.002)

    def episode(seconds):
        rec.start()
        feed(seconds)
        return rec.save(True)

    out = {"first": episode(0.6)}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, hard))  # files above 32 kB: EFBIG
    rec.start()
    feed(1.0)  # noise images: the first 8-frame shard is larger than the limit
    for _ in range(150):  # recording goes on at 30 Hz until the recorder notices (within a step or two)
        if rec.status()["state"] == "failed":
            break
        feed(1 / 30)
        time.sleep(1 / 30)
    out["status"] = rec.status()
    try:
        rec.save(True)
        out["save"] = "saved?!"
    except RecorderStateError as exc:
        out["save"] = str(exc)
    out["after_save"] = rec.status()["state"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
    out["third"] = episode(0.6)
    rec.close()
    print(json.dumps(out, default=str))
    """
)


def test_a_write_error_fails_the_episode_at_once_and_recording_goes_on_after(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse a real write (EFBIG) in a child process: no mock, no root.
    The episode fails during recording (not at save), the save is refused with the reason, the
    committed episode is untouched and the next episode records once writing works again."""
    from vla_robot.data import EpisodeStore

    url = str(tmp_path / "efbig.zarr")
    run = subprocess.run([sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    out = json.loads(run.stdout.strip().splitlines()[-1])
    status = out["status"]
    assert status["state"] == "failed" and not status["recording"] and status["level"] == "ERROR"
    assert "FAILED, not saved: file too large" in status["problems"][0]
    assert "episode 1 was not committed" in status["problems"][0]
    assert status["write_errors"] >= 1 and status["episodes_failed"] == 1
    assert out["save"].startswith("episode 1 failed and was not saved: file too large")
    assert out["after_save"] == "idle"  # the refusal acknowledged it
    assert (out["first"], out["third"]) == (0, 1)
    store = EpisodeStore.open(url)
    assert store.num_episodes == 2
    for i in range(2):
        n = store.episode_length(i)
        assert n >= 15 and store.read("step_index", i).tolist() == list(range(n))
        assert np.abs(store.read("skew/images/front", i)).max() <= 0.5 / 30 + 1e-6
        store.read("images/wrist", i)  # every frame decodes
