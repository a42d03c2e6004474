"""``TwinCameraSource`` on a running real-time twin, in one process: its device clock, drops and
the camera faults the twin's host writes into the shared state (tests/test_twin_cameras.py runs
it inside camera_node processes)."""

import os

import numpy as np
import pytest

from vla_robot.cameras.errors import CameraDisconnected


@pytest.fixture
def running_twin():
    from sim.realtime import make_twin_robot

    robot = make_twin_robot("widowx", f"twin://widowx250?name=camsrc{os.getpid()}")
    robot.connect()
    yield robot.twin_host
    robot.twin_host.close()


def test_device_clock_drop_pattern_and_runtime_camera_faults(running_twin):
    from sim.realtime.camera import CameraTiming, TwinCameraSource

    host = running_twin
    fps, offset = 30.03, 42.0
    cam = TwinCameraSource("third_person", host.name, 32, 32, CameraTiming(fps=fps, clock_offset_s=offset,
                                                                           drop_pattern="every:5"), depth=True)
    cam.connect()
    cam.read(timeout=5.0)  # the first frame makes the renderers (slow: later frames queued meanwhile are lost)
    frames = [cam.read(timeout=2.0) for _ in range(12)]
    indexes = np.array([f.index for f in frames])
    assert np.all(indexes % 5 != 4)  # every 5th frame lost on the device
    assert np.all(np.diff(indexes) == np.where(indexes[1:] % 5 == 0, 2, 1))
    for f in frames:
        assert f.stamp == pytest.approx(offset + f.index / fps, abs=1e-9)  # the device clock, not the host's
        assert f.color.shape == (32, 32, 3) and f.color.std() > 5 and f.depth.dtype == np.uint16
    arrival = np.array([f.receive_stamp - f.stamp for f in frames])
    assert np.ptp(arrival) < 1e-6  # captured on the device's own instants (drift 0): a constant offset to the host

    host.inject({"kind": "camera_clock", "camera": "third_person", "offset_s": 10.0})
    jumped = cam.read(timeout=2.0)
    assert jumped.stamp == pytest.approx(offset + 10.0 + jumped.index / fps, abs=1e-6)

    host.inject({"kind": "camera_drops", "camera": "third_person", "probability": 1.0})
    with pytest.raises(TimeoutError):
        cam.read(timeout=0.3)  # every frame lost
    host.inject({"kind": "camera_drops", "camera": "third_person", "probability": 0.0, "pattern": ""})
    consecutive = [cam.read(timeout=2.0).index for _ in range(6)]
    assert np.all(np.diff(consecutive) == 1)

    host.inject({"kind": "camera_unplug", "camera": "third_person"})
    with pytest.raises(CameraDisconnected, match="unplugged"):
        cam.read(timeout=2.0)
    with pytest.raises(CameraDisconnected):
        cam.connect()
    host.inject({"kind": "camera_replug", "camera": "third_person"})
    cam.connect()
    again = cam.read(timeout=2.0)
    assert again.index == 0 and again.stamp == pytest.approx(offset + 10.0, abs=1e-6)  # a replugged clock restarts

    assert host.inject({"kind": "clear"}) == "every fault cleared" and host.status()["cameras"] == {}
    cam.close()


def test_unknown_fault_payloads_are_refused_with_what_is_allowed(running_twin):
    from sim.realtime import FaultError

    with pytest.raises(FaultError, match="unknown twin fault kind 'fire'.*block_joint"):
        running_twin.inject('{"kind": "fire"}')
    with pytest.raises(FaultError, match="not valid JSON"):
        running_twin.inject("{kind: block_joint}")
    with pytest.raises(FaultError, match=r"missing \['joint'\]"):
        running_twin.inject({"kind": "block_joint"})
    with pytest.raises(ValueError, match="unknown joint 'knee'"):
        running_twin.inject({"kind": "block_joint", "joint": "knee"})
    with pytest.raises(FaultError, match="every:N"):
        running_twin.inject({"kind": "camera_drops", "camera": "wrist", "pattern": "often"})
