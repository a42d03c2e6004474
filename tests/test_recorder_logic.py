"""Recorder logic without ROS: stream alignment, gaps, episode control, console line, preview."""

import time

import numpy as np
import pytest

from vla_robot.recorder.aligner import AlignerConfig, StreamAligner
from vla_robot.recorder.console import OperatorConsole, status_line
from vla_robot.recorder.preview import Preview
from vla_robot.recorder.session import EpisodeRecorder, RecorderStateError

STREAMS = ("state", "action", "images/cam")


def feed(al, stream, stamps, receive=0.0):
    for t in stamps:
        al.add(stream, t, t, receive)


def test_nearest_sample_within_tolerance_on_the_control_grid():
    al = StreamAligner(AlignerConfig(10.0, STREAMS))
    feed(al, "state", np.arange(0, 1.0, 0.02))  # 50 Hz joint states
    feed(al, "images/cam", np.arange(0.005, 1.0, 1 / 30))  # 30 Hz camera, offset
    feed(al, "action", np.arange(0.001, 1.0, 0.1))
    steps = al.poll(now=0.0)
    grid = [s.grid_time for s in steps]
    np.testing.assert_allclose(grid, np.arange(0, 0.85, 0.1), atol=1e-9)
    for s in steps:
        for name, sample in s.samples.items():
            assert abs(sample.stamp - s.grid_time) <= 0.04 + 1e-9, name
    assert al.stats.dropped_steps == 0


def test_a_gap_is_counted_and_never_filled():
    al = StreamAligner(AlignerConfig(10.0, STREAMS, max_wait_s=0.1))
    t = np.arange(0, 2.0, 0.1)
    feed(al, "state", t)
    feed(al, "action", t)
    feed(al, "images/cam", [x for x in t if not 0.75 < x < 1.25])  # camera silent for 0.5 s
    steps = al.poll(now=1.0)  # the reference arrived long ago: undecided steps time out
    grid = np.array([s.grid_time for s in steps])
    assert not np.any((grid > 0.75) & (grid < 1.25))  # no step invented for the hole
    assert al.stats.gaps["images/cam"] == 5 and al.stats.dropped_steps == 5
    assert al.stats.gaps["state"] == 0


def test_late_stream_waits_until_max_wait_then_counts_a_gap():
    al = StreamAligner(AlignerConfig(10.0, STREAMS, max_wait_s=0.5))
    feed(al, "state", [0.0, 0.1, 0.2], receive=100.0)
    feed(al, "action", [0.0, 0.1, 0.2], receive=100.0)
    feed(al, "images/cam", [0.0, 0.1], receive=100.0)
    assert [s.grid_time for s in al.poll(now=100.1)] == [0.0]  # 0.1 waits: a nearer frame may still come
    feed(al, "images/cam", [0.2], receive=100.2)
    assert [round(s.grid_time, 3) for s in al.poll(now=100.2)] == [0.1]  # 0.2 waits for a later state
    assert [round(s.grid_time, 3) for s in al.poll(now=100.8)] == [0.2]  # waited max_wait: decided as is
    feed(al, "state", [0.3, 0.4], receive=100.9)
    feed(al, "action", [0.3, 0.4], receive=100.9)
    feed(al, "images/cam", [0.4], receive=101.0)  # 0.3's frame never comes
    assert [round(s.grid_time, 3) for s in al.poll(now=101.5)] == [0.4]  # nothing invented for 0.3
    assert al.stats.dropped_steps == 1 and al.stats.gaps["images/cam"] == 1


def test_warmup_and_trailing_steps_are_not_gaps_and_duplicates_are_dropped():
    al = StreamAligner(AlignerConfig(10.0, STREAMS, max_wait_s=0.0))
    t = np.arange(0, 1.0, 0.1)
    feed(al, "state", t)
    feed(al, "images/cam", t)
    feed(al, "action", t[2:7])  # teleop starts late and stops early
    al.add("action", 0.6, 0.6)  # duplicate
    steps = al.poll(now=10.0) + al.flush()
    assert [round(s.grid_time, 3) for s in steps] == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert al.stats.warmup_steps == 2 and al.stats.trimmed_steps == 3 and al.stats.dropped_steps == 0
    assert al.stats.out_of_order["action"] == 1


def test_aligner_config_errors_name_the_allowed_range():
    with pytest.raises(ValueError, match="half a control period"):
        AlignerConfig(10.0, STREAMS, tolerance_s=0.2)
    with pytest.raises(ValueError, match="reference stream"):
        AlignerConfig(10.0, ("action",))


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
    assert rec.stats.frames_written == 12 + 11 + 12  # discard does not flush the last pending step
    assert rec.stats.episodes_discarded == 1
    p50, p99 = rec.stats.lag_percentiles()
    assert 0 <= p50 <= p99 < 1.0


def test_status_line_and_console_keys():
    line = status_line({"recording": True, "episode": 3, "duration_s": 12.5, "frames": 375, "fps": 30.0,
                        "dropped_steps": 2, "queue_overflows": 1, "lag_p99_s": 0.05, "disk_free_bytes": 12.3e9})
    assert line.startswith("[REC] ep 3") and "375 frames @ 30.0 Hz" in line and "dropped 3" in line
    assert "12.3 GB free" in line
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
