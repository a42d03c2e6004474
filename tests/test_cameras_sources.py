"""Camera sources through their real libraries: RealSense via a software-device recording
played back by the pyrealsense2 pipeline, OpenCV via a real video file, plus disconnect
handling and device-clock mapping."""

import time

import cv2
import numpy as np
import pytest

from vla_robot.cameras.clock import DeviceClockMapper
from vla_robot.cameras.errors import CameraDisconnected
from vla_robot.cameras.opencv_camera import OpenCVCamera, OpenCVCameraConfig
from vla_robot.cameras.realsense_camera import RealSenseCamera, RealSenseConfig
from vla_robot.cameras.reconnecting import ReconnectingCamera

W, H, FPS = 64, 48, 30


def record_software_realsense(path, n_frames=12):
    """A RealSense recording made by pyrealsense2's software_device (no camera attached)."""
    import pyrealsense2 as rs

    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, "SW123456")
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 55.0, 56.0, 31.5, 23.5
    intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
    sensors, profiles = [], []
    for uid, (name, stream, fmt, bpp) in enumerate(
        [("RGB", rs.stream.color, rs.format.rgb8, 3), ("Depth", rs.stream.depth, rs.format.z16, 2)]
    ):
        sensor = dev.add_sensor(name)
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = stream, 0, uid, W, H, FPS, bpp, fmt
        vs.intrinsics = intr
        profiles.append(sensor.add_video_stream(vs))
        sensors.append(sensor)
    sensors[1].add_read_only_option(rs.option.depth_units, 0.001)
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]
    profiles[1].register_extrinsics_to(profiles[0], identity)
    recorder = rs.recorder(str(path), dev)
    rec_sensors = recorder.query_sensors()
    for s in rec_sensors:
        s.open(s.get_stream_profiles()[0])
        s.start(lambda f: None)
    for i in range(n_frames):
        for sensor, profile, pixels in (
            (sensors[0], profiles[0], np.full((H, W, 3), (i * 10, 255 - i * 10, 7), np.uint8)),
            (sensors[1], profiles[1], np.full((H, W), 500 + i, np.uint16)),
        ):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels, W * pixels.itemsize * (3 if pixels.ndim == 3 else 1), pixels.itemsize * (3 if pixels.ndim == 3 else 1)
            f.timestamp, f.domain, f.frame_number = 5000.0 + i * 1000.0 / FPS, rs.timestamp_domain.hardware_clock, i
            f.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(f)
        time.sleep(1.0 / FPS)
    for s in rec_sensors:
        s.stop()
        s.close()
    del recorder, rec_sensors


def test_realsense_pipeline_reads_colour_depth_and_intrinsics_from_playback(tmp_path):
    path = tmp_path / "sw.db3"
    record_software_realsense(path)
    cam = RealSenseCamera("front", RealSenseConfig(width=W, height=H, fps=FPS, depth=True, playback_file=str(path)))
    cam.connect()
    try:
        assert cam.serial == "SW123456"
        assert (cam.intrinsics.fx, cam.intrinsics.fy, cam.intrinsics.cx) == pytest.approx((55.0, 56.0, 31.5))
        frames = []
        for _ in range(4):
            frames.append(cam.read(timeout=2.0))
    finally:
        cam.close()
    stamps = [f.stamp for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    for f in frames:
        i = f.index
        assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8
        assert tuple(f.color[5, 5]) == (i * 10, 255 - i * 10, 7)
        assert f.stamp == pytest.approx(5.0 + i / FPS, abs=1e-3)
        assert f.depth is not None and f.depth.dtype == np.uint16
        assert f.depth.min() == f.depth.max()  # a flat plane stays flat once aligned to colour
        assert f.depth[0, 0] in (500 + i - 1, 500 + i)  # millimetres; the syncer may pair the previous depth


def test_realsense_missing_device_is_a_clear_disconnect(tmp_path):
    cam = RealSenseCamera("front", RealSenseConfig(playback_file=str(tmp_path / "absent.db3")))
    with pytest.raises(CameraDisconnected, match="front"):
        cam.connect()


def test_opencv_reads_a_real_video_file_as_rgb(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    for i in range(6):
        writer.write(np.full((H, W, 3), (200, 40, i * 30), np.uint8))  # BGR on disk
    writer.release()
    cam = OpenCVCamera("usb", OpenCVCameraConfig(source=path, width=32, height=24, fps=FPS))
    cam.connect()
    frames = [cam.read() for _ in range(6)]
    assert all(f.color.shape == (24, 32, 3) for f in frames)  # resized to the requested size
    for i, f in enumerate(frames):
        np.testing.assert_allclose(f.color[12, 16].astype(int), (i * 30, 40, 200), atol=6)  # RGB order
    with pytest.raises(CameraDisconnected, match="read failed"):
        cam.read()  # end of file behaves like an unplugged camera
    cam.close()


class FlakyCapture:
    """A VideoCapture stand-in for a USB camera that is unplugged after a few frames."""

    plugged = True

    def __init__(self, *args):
        self.n = 0

    def isOpened(self):
        return FlakyCapture.plugged

    def set(self, *args):
        return True

    def get(self, prop):
        return 0.0

    def read(self):
        self.n += 1
        if not FlakyCapture.plugged or self.n > 3:
            FlakyCapture.plugged = False
            return False, None
        return True, np.zeros((H, W, 3), np.uint8)

    def release(self):
        pass


def test_disconnect_is_reported_and_reconnection_attempted():
    FlakyCapture.plugged = True
    cam = ReconnectingCamera(OpenCVCamera("usb", OpenCVCameraConfig(width=W, height=H), FlakyCapture),
                             retry_interval_s=0.01, max_retry_interval_s=0.02)
    cam.connect()
    got = [cam.read() for _ in range(4)]
    assert [g is not None for g in got] == [True, True, True, False]
    assert cam.health.disconnects == 1 and not cam.health.connected
    assert "read failed" in cam.health.last_error
    time.sleep(0.03)
    assert cam.read() is None  # still unplugged: the retry fails and is counted
    assert cam.health.reconnect_attempts == 2 and "cannot open" in cam.health.last_error
    FlakyCapture.plugged = True
    time.sleep(0.05)
    assert cam.read() is not None and cam.health.connected
    assert cam.health.reconnect_attempts == 3 and cam.health.frames == 4


def test_device_clock_maps_to_host_time_without_arrival_jitter():
    rng = np.random.default_rng(1)
    mapper = DeviceClockMapper(window=100)
    true_offset, min_latency = 1234.5, 0.004
    errors = []
    for i in range(200):
        device = 10.0 + i / 30
        receive = device + true_offset + min_latency + rng.exponential(0.01)
        mapped = mapper.to_host(device, receive)
        assert mapped <= receive
        if i > 50:
            errors.append(mapped - (device + true_offset + min_latency))
    assert max(abs(e) for e in errors) < 0.002  # arrival jitter is ~10 ms; the mapped stamp is ~1 ms
    mapper.to_host(0.5, 5000.0)  # the device clock restarted
    assert mapper.resets == 1 and mapper.offset == pytest.approx(4999.5)
