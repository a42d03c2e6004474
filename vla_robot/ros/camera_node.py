"""Camera node: one per camera, Image + CameraInfo with the sensor-data QoS.

Sources: ``realsense`` (pyrealsense2, optional aligned depth), ``opencv`` (V4L2/USB or a
video file) and ``twin``: run as its own process (``device`` = the twin's address, e.g.
``twin://widowx250?name=lab``), a free-running twin camera with its own clock, drops and
faults (``sim.realtime.camera``; optional depth); composed in one process with the
lock-stepped sim arm node, a camera rendered on each simulation step. Hardware and
free-running stamps are the device clock mapped to ROS time; a dead camera is reported in
diagnostics and reconnected with back-off.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vla_robot.ros import diagnostics
from vla_robot.ros.conversions import camera_info_msg, compressed_image_msg, depth_to_msg, image_to_msg
from vla_robot.ros.executor import spin_single
from vla_robot.ros.params import declare
from vla_robot.ros.qos import sensor_qos

PARAMS = {
    "sensor_qos": "sensor_data",  # sensor_data (best effort) | reliable (composed stacks)
    "source": "opencv",  # realsense | opencv | twin
    "camera_name": "front",  # topics: <camera_name>/image_raw, <camera_name>/camera_info
    "device": "0",  # opencv: /dev/videoN, an index or a file; realsense: serial number ("" = first)
    "width": 640,
    "height": 480,
    "fps": 30.0,
    "depth": False,  # realsense, twin: publish depth aligned to colour on <camera_name>/depth/image_raw
    "exposure_us": 0.0,  # realsense: 0 = auto
    "playback_file": "",  # realsense: replay a recording instead of a device
    "publish_compressed": False,  # also publish <camera_name>/image_raw/compressed (JPEG)
    "frame_id": "",  # default <camera_name>_optical_frame
    "stale_after_s": 1.0,  # diagnostics go WARN when no frame arrived for this long
    # twin (free-running) only: the camera's own clock and link (sim.realtime.camera.CameraTiming)
    "clock_offset_s": 0.0,  # device clock at its first frame
    "drift_ppm": 0.0,  # device clock rate error: +100 runs 100 ppm fast
    "jitter_ms": 0.0,  # Gaussian jitter of each capture instant
    "latency_ms": 5.0,  # capture to arrival
    "phase_s": -1.0,  # capture phase within the frame period of the ROS clock (< 0: free)
    "drop_probability": 0.0,  # frames lost on the device
    "drop_pattern": "",  # every:N | burst:N:K
    "seed": 0,  # drop and jitter draws
}


class CameraNode(Node):
    def __init__(self, overrides: dict | None = None, camera=None, name: str | None = None, context=None):
        super().__init__(name or f"camera_{(overrides or {}).get('camera_name', 'front')}", context=context)
        self.p = declare(self, PARAMS, overrides)
        self._sensor_qos = sensor_qos(self.p.sensor_qos)
        cam = self.p.camera_name
        self.frame_id = self.p.frame_id or f"{cam}_optical_frame"
        self.image_pub = self.create_publisher(Image, f"{cam}/image_raw", self._sensor_qos)
        self.info_pub = self.create_publisher(CameraInfo, f"{cam}/camera_info", self._sensor_qos)
        self.compressed_pub = (self.create_publisher(CompressedImage, f"{cam}/image_raw/compressed", self._sensor_qos)
                               if self.p.publish_compressed else None)
        self.depth_pub = self.create_publisher(Image, f"{cam}/depth/image_raw", self._sensor_qos) if self.p.depth else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.published = 0
        self.errors = 0
        self.camera = camera
        self._stop = threading.Event()
        self._thread = None
        if self.p.source == "twin" and camera is not None:  # composed with the lock-stepped arm node
            camera.connect()
            self.health = None
        else:
            from vla_robot.cameras.reconnecting import ReconnectingCamera

            self.camera = ReconnectingCamera(camera or self._make_camera())
            self.health = self.camera.health
            self.camera.connect()
            self._thread = threading.Thread(target=self._capture_loop, name=f"capture-{cam}", daemon=True)
            self._thread.start()
        self.create_timer(1.0, self._publish_diagnostics)

    def _make_camera(self):
        p = self.p
        if p.source == "realsense":
            from vla_robot.cameras.realsense_camera import RealSenseCamera, RealSenseConfig

            return RealSenseCamera(p.camera_name, RealSenseConfig(serial=p.device if p.device != "0" else "",
                                                                  width=p.width, height=p.height, fps=int(p.fps),
                                                                  depth=p.depth, exposure_us=p.exposure_us,
                                                                  playback_file=p.playback_file))
        if p.source == "opencv":
            from vla_robot.cameras.opencv_camera import OpenCVCamera, OpenCVCameraConfig

            return OpenCVCamera(p.camera_name, OpenCVCameraConfig(source=p.device, width=p.width, height=p.height,
                                                                  fps=p.fps))
        if p.source == "twin":
            from sim.realtime.camera import CameraTiming, TwinCameraSource

            timing = CameraTiming(fps=p.fps, clock_offset_s=p.clock_offset_s, drift_ppm=p.drift_ppm,
                                  jitter_ms=p.jitter_ms, latency_ms=p.latency_ms, phase_s=p.phase_s,
                                  drop_probability=p.drop_probability, drop_pattern=p.drop_pattern, seed=p.seed)
            address = p.device if p.device not in ("", "0") else "twin"
            return TwinCameraSource(p.camera_name, address, p.width, p.height, timing, depth=p.depth,
                                    attach_timeout_s=2.0)  # ReconnectingCamera retries while the twin starts
        raise ValueError(f"camera source {p.source!r} unknown; choose realsense, opencv or twin")

    def publish_frame(self, rgb, stamp: float, depth=None) -> None:
        self.image_pub.publish(image_to_msg(rgb, stamp, self.frame_id))
        self.info_pub.publish(camera_info_msg(self.camera.intrinsics, stamp, self.frame_id))
        if self.compressed_pub is not None:
            self.compressed_pub.publish(compressed_image_msg(rgb, stamp, self.frame_id))
        if self.depth_pub is not None and depth is not None:
            self.depth_pub.publish(depth_to_msg(depth, stamp, self.frame_id))
        self.published += 1

    def on_twin_step(self, stamp: float) -> None:
        """Render the twin's current step and publish it stamped like the joint state of that step."""
        frame = self.camera.read()
        self.publish_frame(frame.color, stamp)

    def _capture_loop(self) -> None:
        wall_minus_mono = time.time() - time.monotonic()
        while not self._stop.is_set() and self.context.ok():
            try:
                frame = self.camera.read(timeout=1.0)
            except Exception as exc:  # never let a driver error end the loop
                self.errors += 1
                self.get_logger().error(f"capture failed: {exc}", throttle_duration_sec=2.0)
                time.sleep(0.1)
                continue
            if frame is None:
                time.sleep(0.05)
                continue
            try:
                self.publish_frame(frame.color, frame.stamp + wall_minus_mono, frame.depth)
            except Exception:
                if self.context.ok():  # a publish racing the shutdown (SIGINT) is not an error
                    raise
        try:
            self.camera.close()  # in this thread: a twin camera's GL context belongs to it
        except Exception:
            pass

    def _publish_diagnostics(self) -> None:
        values = {"source": self.p.source, "published": self.published, "errors": self.errors}
        level, message = diagnostics.OK, "ok"
        if self.health is not None:
            h = self.health
            values.update(connected=h.connected, frames=h.frames, timeouts=h.timeouts, disconnects=h.disconnects,
                          reconnect_attempts=h.reconnect_attempts, last_error=h.last_error,
                          clock_offset_s=self.camera.clock.offset or 0.0)
            for counter in ("device_drops", "host_drops"):  # sources that can tell (the free-running twin camera)
                if hasattr(self.camera.camera, counter):
                    values[counter] = getattr(self.camera.camera, counter)
            age = time.monotonic() - h.last_frame_time if h.last_frame_time else float("inf")
            if not h.connected:
                level, message = diagnostics.ERROR, f"disconnected: {h.last_error}; reconnecting"
            elif age > self.p.stale_after_s:
                level, message = diagnostics.WARN, f"no frame for {age:.1f}s"
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.diag_pub.publish(diagnostics.diagnostic_array(f"{self.get_name()}: camera", self.p.camera_name, level,
                                                           message, values, stamp))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self.camera.close()
        except Exception:
            pass


def main(args=None) -> None:
    spin_single(CameraNode, args)
