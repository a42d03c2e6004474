"""The recorder node as its own process (installed entry point), fed by an independent publisher
that does not import vla_robot (plain rclpy + numpy, publishing as realsense-ros, usb_cam and
xs_sdk do, default reliable QoS), driven through its services, console and gamepad."""

from __future__ import annotations

import numpy as np
import pytest
from process_launch import RosClient
from recorder_rig import IndependentPublisher, RecorderProbe, camera, publisher_config, recorder_node

pytestmark = pytest.mark.ros

RATE = 30.0
CAMERAS = {"front": camera(29.97, phase=0.15), "wrist": camera(30.00, phase=0.55, drift_ppm=1500.0),
           "side": camera(30.03, phase=0.9, drift_ppm=-2000.0)}


def record(probe, seconds: float) -> dict:
    """Start, record ``seconds`` by the wall clock, save as success; the save's answer."""
    import time

    started = probe.call("start")
    assert started.success, started.message
    time.sleep(seconds)
    saved = probe.call("save", data=True)
    assert saved.success, saved.message
    return saved


def check_episode(store, i: int, published: dict, cameras: dict) -> None:
    """Every grid step present; each camera within half its period; stored samples are published ones."""
    ep = store.read_episode(i)
    meta = store.episode_meta(i)
    alignment = meta["extra"]["alignment"]
    n = store.episode_length(i)
    np.testing.assert_array_equal(ep["step_index"], np.arange(n), err_msg=str(alignment))  # no step lost
    assert meta["hole_steps"] == 0 and alignment["holes"] == [] and alignment["warmup_steps"] <= 1
    assert abs(n - alignment["requested_s"] * RATE) <= 2, (n, alignment)  # start -> save +-1 step at each end
    for name, cfg in cameras.items():
        half = 0.5 / cfg["fps"] * (1 + cfg.get("drift_ppm", 0.0) * 1e-6)
        skew = ep[f"skew/images/{name}"]
        assert np.abs(skew).max() <= half + 1e-4, f"{name}: |skew| {np.abs(skew).max() * 1000:.1f} ms > {half * 1000:.1f}"
        stamps = np.asarray(published["stamps"][f"images/{name}"])
        stored = ep[f"stamps/images/{name}"][:, 0]
        k = np.searchsorted(stamps, stored - 1e-6)
        np.testing.assert_allclose(stamps[k], stored, atol=2e-6)  # a frame the camera really sent ...
        marks = ep[f"images/{name}"][:, 0, 0, :2].astype(int)  # ... and its pixels are that frame's (png)
        np.testing.assert_array_equal(marks[:, 0] + 256 * marks[:, 1], k)
    state_stamps = ep["stamps/state"][:, 0]
    np.testing.assert_allclose(ep["state"][:, 0], state_stamps - published["t0"], atol=1e-5)  # the value is the sample's
    assert np.abs(ep["skew/state"]).max() <= 0.5 / min(50.0, 100.0) + 2e-3


@pytest.mark.parametrize("joints_hz", [50.0, 100.0])
def test_free_running_cameras_every_step_present_and_skew_within_half_a_period(process_launch, tmp_path, joints_hz):
    from vla_robot.data import EpisodeStore

    store = str(tmp_path / "free.zarr")
    process_launch.start(recorder_node(store, list(CAMERAS), encoding="png"))
    publisher = IndependentPublisher(publisher_config(CAMERAS, joints_hz, 21.0, tmp_path / "stamps.json"), tmp_path)
    try:
        with RosClient("free_running") as ros:
            probe = RecorderProbe(ros)
            probe.wait_streams(["state", "action"] + [f"images/{c}" for c in CAMERAS])
            record(probe, 8.0)
            record(probe, 5.0)
            status = probe.status()
            assert status["level"] == "OK" and status["episodes_saved"] == 2, status
            assert status["streams"]["state"]["rate_hz"] == pytest.approx(joints_hz, rel=0.2)
            # (diagnostics may have flashed ERROR if this loaded machine starved the publisher for
            # stale_after_s: every stream silent at once looks exactly like a dead driver stack)
        published = publisher.wait()
    finally:
        publisher.kill()
    process_launch.assert_alive()
    s = EpisodeStore.open(store)
    assert s.num_episodes == 2
    for i in range(2):
        check_episode(s, i, published, CAMERAS)
