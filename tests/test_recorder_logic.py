"""Recorder logic without ROS: episode control, console line, preview (alignment: test_recorder_alignment.py)."""

import time

import numpy as np
import pytest

from vla_robot.recorder.console import OperatorConsole, status_line
from vla_robot.recorder.preview import Preview
from vla_robot.recorder.session import EpisodeRecorder, RecorderStateError

def make_store(tmp_path, encoding="png"):
    from vla_robot.data import CameraSpec, EpisodeStore, StoreSchema
    from vla_robot.robots.specs import WIDOWX_250

    schema = StoreSchema(robot="widowx250", joint_names=WIDOWX_250.joint_names, control_rate_hz=10.0,
                         action_space={"type": "joint_position", "names": list(WIDOWX_250.joint_names)},
                         cameras=[CameraSpec("cam", 16, 12, encoding=encoding)], state_dim=7, action_dim=7)
    return EpisodeStore.create(str(tmp_path / "s.zarr"), schema)


def test_episode_recorder_start_save_discard_and_state_errors(tmp_path):
    store = make_store(tmp_path)
    rec = EpisodeRecorder(store, ("cam",), 10.0, max_wait_s=5.0)
    with pytest.raises(RecorderStateError, match="no instruction"):
        rec.start()
    with pytest.raises(ValueError, match="non-empty"):
        rec.set_instruction("  ")
    rec.set_instruction("pick the cube")
    with pytest.raises(RecorderStateError, match="no episode is recording"):
        rec.save(True)
    for episode, keep in enumerate((True, False, True)):
        rec.start()
        with pytest.raises(RecorderStateError, match="already recording"):
            rec.start()
        for k in range(12):
            t = 100.0 * episode + k * 0.1
            img = np.full((12, 16, 3), k, np.uint8)
            rec.add_state(t, np.full(7, k, np.float32))
            rec.add_action(t, np.full(7, k + 0.5, np.float32))
            rec.add_image("cam", t, img)
        if keep:
            rec.save(success=episode == 0)
        else:
            rec.discard()
    rec.close()
    from vla_robot.data import EpisodeStore

    s = EpisodeStore.open(str(tmp_path / "s.zarr"))
    assert s.num_episodes == 2
    assert [s.episode_meta(i)["success"] for i in range(2)] == [True, False]
    ep = s.read_episode(1)
    assert len(ep["state"]) == 12
    np.testing.assert_array_equal(ep["state"][:, 0], np.arange(12))
    np.testing.assert_array_equal(ep["action"][:, 0], np.arange(12) + 0.5)
    np.testing.assert_array_equal(ep["images/cam"][5], np.full((12, 16, 3), 5, np.uint8))
    assert rec.stats.frames_written == 3 * 12  # every stream had a sample at the last grid time: decided at once
    assert rec.stats.episodes_discarded == 1
    p50, p99 = rec.stats.lag_percentiles()
    assert 0 <= p50 <= p99 < 1.0


def test_status_line_and_console_keys():
    line = status_line({"state": "recording", "episode": 3, "duration_s": 12.5, "frames": 375, "expected_steps": 376,
                        "fps": 30.0, "dropped_steps": 2, "queue_overflows": 1, "lag_p99_s": 0.05,
                        "disk_free_bytes": 12.3e9, "level": "ERROR",
                        "problems": ["images/wrist: no data for 1.2 s (its steps become a marked hole)"],
                        "streams": {"state": {"skew_p99_ms": 4.6}, "images/wrist": {"skew_p99_ms": 16.2}}})
    assert line.startswith("[REC] ep 3") and "375/376 steps @ 30.0 Hz" in line and "dropped 3" in line
    assert "skew p99 ms state 5 wrist 16" in line and "12.3 GB free" in line
    assert line.endswith("ERROR: images/wrist: no data for 1.2 s (its steps become a marked hole)")
    assert status_line({"state": "failed", "level": "ERROR", "problems": ["episode 4 FAILED"]}).startswith("[FAILED]")
    actions = []
    console = OperatorConsole(actions.append)
    for key in (" ", "f", "d", "r", "x", "q"):
        console.handle_key(key)
    assert actions == ["toggle", "save_failure", "discard", "rerecord", "quit"]


def test_preview_writes_a_jpeg_mosaic_headless(tmp_path):
    import cv2

    preview = Preview(str(tmp_path / "preview.jpg"), period_s=0.0, window=False)
    images = {"a": np.zeros((48, 64, 3), np.uint8), "b": np.full((24, 32, 3), 255, np.uint8)}
    assert preview.update(images, "status")
    img = cv2.imread(str(tmp_path / "preview.jpg"))
    assert img.shape == (240, 320 + 320, 3)  # both tiles scaled to 240 rows
    assert img[120, 500].mean() > 200 and img[120, 100].mean() < 60
