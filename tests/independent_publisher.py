"""Publish a robot's sensor streams the way its drivers do, with plain rclpy + numpy only.

It does not import vla_robot: it stands for realsense-ros (hardware-stamped colour and aligned
depth on free-running camera clocks), usb_cam (host-stamped, jittered), Interbotix' xs_sdk
(joint states stamped at the read, finger joints included) and a teleop publishing
JointTrajectory, each in its own thread on its own clock, with the default reliable QoS.
Stamps follow each device's own timer; delivery is as late as the (loaded) machine makes it.

    python independent_publisher.py CONFIG.json

CONFIG (all times in seconds)::

    {"duration_s": 20, "log": "stamps.json", "namespace": "",
     "cameras": {"front": {"fps": 29.97, "phase": 0.3, "drift_ppm": -1500, "jitter_s": 0.0,
                           "width": 64, "height": 48, "depth": false, "noise": false,
                           "outages": [[4.0, 6.5]]}},
     "joints": {"rate_hz": 100, "names": [...], "extra_names": ["left_finger", "right_finger"]},
     "teleop": {"rate_hz": 30, "names": [...]}}

Outages are relative to the start and stop a camera as an unplugged cable would (nothing is
published; the camera's crystal runs on); ``unplug NAME`` / ``replug NAME`` lines on stdin do the
same at any moment (each is acknowledged with ``UNPLUGGED NAME`` / ``REPLUGGED NAME``), and
``stop`` ends the run early. Every image carries its frame number in its first
pixels (R = k % 256, G = k // 256 % 256), every joint state and command its stamp in position 0
(``(stamp - t0) % 3 - 1.5`` rad, inside every joint's limits like the others' 0.02), so a test can
check the recorder stored the very sample it says. On exit it writes the stamps
it published, per stream, to ``log`` and prints ``START <t0>`` / ``DONE`` lines on stdout.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def ros_time(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def sleep_until(wall: float, stop: threading.Event) -> bool:
    delay = wall - time.time()
    return not stop.wait(delay) if delay > 0 else not stop.is_set()


class Publisher:
    def __init__(self, config: dict):
        self.config = config
        rclpy.init()
        self.node = rclpy.create_node("independent_driver_stack", namespace=config.get("namespace", ""))
        self.stop = threading.Event()
        self.log: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.t0 = time.time() + 1.0  # every stream starts on its own phase after discovery
        self.unplugged: set[str] = set()

    def mark(self, stamp: float) -> float:
        return (stamp - self.t0) % 3.0 - 1.5

    def record(self, stream: str, stamp: float) -> None:
        with self.lock:
            self.log.setdefault(stream, []).append(stamp)

    def camera(self, name: str, cfg: dict) -> None:
        width, height = cfg.get("width", 64), cfg.get("height", 48)
        image_pub = self.node.create_publisher(Image, f"{name}/image_raw", 10)
        info_pub = self.node.create_publisher(CameraInfo, f"{name}/camera_info", 10)
        depth_pub = self.node.create_publisher(Image, f"{name}/depth/image_raw", 10) if cfg.get("depth") else None
        period = (1.0 / cfg["fps"]) * (1.0 + cfg.get("drift_ppm", 0.0) * 1e-6)  # its own crystal
        jitter = cfg.get("jitter_s", 0.0)
        outages = [(self.t0 + a, self.t0 + b) for a, b in cfg.get("outages", [])]
        rng = np.random.default_rng(abs(hash(name)) % 2**32)
        base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) if cfg.get("noise") else \
            np.full((height, width, 3), 90, np.uint8)
        depth = np.full((height, width), 700, np.uint16)
        info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[float(width), 0.0, width / 2, 0.0, float(width), height / 2, 0.0, 0.0, 1.0])
        k = 0
        while True:
            exposure = self.t0 + cfg.get("phase", 0.0) * period + k * period
            stamp = exposure + (random.uniform(-jitter, jitter) if jitter else 0.0)
            if not sleep_until(exposure + 0.004, self.stop):  # readout + transfer before it is published
                return
            if name not in self.unplugged and not any(a <= exposure < b for a, b in outages):
                pixels = base if not cfg.get("noise") else np.roll(base, k, axis=1)
                pixels = pixels.copy()
                pixels[0, :4] = (k % 256, (k // 256) % 256, 7)
                msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                            data=pixels.tobytes())
                msg.header.stamp, msg.header.frame_id = ros_time(stamp), f"{name}_color_optical_frame"
                image_pub.publish(msg)
                info.header = msg.header
                info_pub.publish(info)
                if depth_pub is not None:
                    d = Image(height=height, width=width, encoding="16UC1", is_bigendian=0, step=width * 2,
                              data=depth.tobytes())
                    d.header = msg.header
                    depth_pub.publish(d)
                    self.record(f"depth/{name}", stamp)
                self.record(f"images/{name}", stamp)
            k += 1

    def joints(self, cfg: dict) -> None:
        pub = self.node.create_publisher(JointState, "joint_states", 10)
        names = list(cfg["names"]) + list(cfg.get("extra_names", []))
        period = 1.0 / cfg["rate_hz"]
        k = 0
        while sleep_until(self.t0 + k * period, self.stop):
            # xs_sdk stamps each message when its timer reads the servos; a loaded test machine wakes
            # this thread up to 0.2 s late, so the read time is the timer's (a burst after a stall
            # arrives late, as from a real driver behind a busy link, but is not a gap in the data)
            stamp = self.t0 + k * period + random.uniform(0.0, cfg.get("jitter_s", 0.0005))
            msg = JointState(name=names, position=[self.mark(stamp)] + [0.02] * (len(names) - 1),
                             velocity=[0.0] * len(names), effort=[0.0] * len(names))
            msg.header.stamp = ros_time(stamp)
            pub.publish(msg)
            self.record("state", stamp)
            k += 1

    def teleop(self, cfg: dict) -> None:
        pub = self.node.create_publisher(JointTrajectory, cfg.get("topic", "joint_trajectory"), 10)
        period = 1.0 / cfg["rate_hz"]
        k = 0
        while sleep_until(self.t0 + 0.0021 + k * period, self.stop):
            stamp = self.t0 + 0.0021 + k * period  # the teleop's own timer (see joints)
            msg = JointTrajectory(joint_names=list(cfg["names"]))
            msg.header.stamp = ros_time(stamp)
            msg.points = [JointTrajectoryPoint(positions=[self.mark(stamp)] + [0.02] * (len(cfg["names"]) - 1))]
            pub.publish(msg)
            self.record("action", stamp)
            k += 1

    def commands(self) -> None:
        for line in sys.stdin:
            words = line.split()
            if words == ["stop"]:
                self.stop.set()
                return
            if len(words) == 2 and words[0] in ("unplug", "replug"):
                (self.unplugged.add if words[0] == "unplug" else self.unplugged.discard)(words[1])
                print(f"{words[0].upper()}GED {words[1]}", flush=True)

    def run(self) -> None:
        cfg = self.config
        threads = [threading.Thread(target=self.camera, args=(name, cam), daemon=True)
                   for name, cam in cfg.get("cameras", {}).items()]
        if "joints" in cfg:
            threads.append(threading.Thread(target=self.joints, args=(cfg["joints"],), daemon=True))
        if "teleop" in cfg:
            threads.append(threading.Thread(target=self.teleop, args=(cfg["teleop"],), daemon=True))
        for thread in threads:
            thread.start()
        threading.Thread(target=self.commands, daemon=True).start()
        print(f"START {self.t0:.6f}", flush=True)
        try:
            self.stop.wait(1.0 + cfg.get("duration_s", 10.0))
        except KeyboardInterrupt:
            pass
        self.stop.set()
        for thread in threads:
            thread.join(timeout=2.0)
        if cfg.get("log"):
            with open(cfg["log"], "w") as f:
                json.dump({"t0": self.t0, "stamps": self.log}, f)
        self.node.destroy_node()
        rclpy.shutdown()
        print("DONE", flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        Publisher(json.load(f)).run()
