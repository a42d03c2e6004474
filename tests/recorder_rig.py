"""A recorder node in its own process (installed entry point) fed by the independent publisher
(tests/independent_publisher.py, no vla_robot inside), and the test's own client for its
services, status and diagnostics. Shared by the recorder process tests and bench/bench_realtime.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PUBLISHER = Path(__file__).with_name("independent_publisher.py")
WIDOWX = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]


def camera(fps: float, phase: float = 0.0, drift_ppm: float = 0.0, **extra) -> dict:
    return {"fps": fps, "phase": phase, "drift_ppm": drift_ppm, **extra}


def publisher_config(cameras: dict, joints_hz: float, duration_s: float, log: Path, teleop_hz: float = 30.0,
                     size: tuple[int, int] = (64, 48), namespace: str = "") -> dict:
    width, height = size
    return {"duration_s": duration_s, "log": str(log), "namespace": namespace,
            "cameras": {name: {"width": width, "height": height, **cfg} for name, cfg in cameras.items()},
            "joints": {"rate_hz": joints_hz, "names": WIDOWX, "extra_names": ["left_finger", "right_finger"]},
            "teleop": {"rate_hz": teleop_hz, "names": WIDOWX}}


class IndependentPublisher:
    """The publisher script as a subprocess; ``t0`` is the wall time its streams start from."""

    def __init__(self, config: dict, workdir: Path, env: dict | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"publisher_{time.monotonic_ns()}.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = Path(config["log"])
        self.process = subprocess.Popen([sys.executable, str(PUBLISHER), str(self.config_path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        line = self.process.stdout.readline()
        if not line.startswith("START"):
            raise RuntimeError(f"independent publisher did not start: {line}{self.process.stdout.read()}")
        self.t0 = float(line.split()[1])

    def command(self, text: str) -> None:
        """``unplug NAME`` / ``replug NAME``: returns once the publisher has acted on it."""
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        ack = self.process.stdout.readline()
        if not ack.startswith(text.split()[0].upper()):
            raise RuntimeError(f"publisher did not acknowledge {text!r}: {ack!r}")

    def wait(self, timeout_s: float = 120.0, stop: bool = True) -> dict:
        """End its run (``stop``; else wait for its duration); the stamps it published, per stream."""
        out, _ = self.process.communicate("stop\n" if stop else None, timeout=timeout_s)
        if self.process.returncode != 0 or "DONE" not in out:
            raise RuntimeError(f"independent publisher failed ({self.process.returncode}): {out}")
        return json.loads(self.log_path.read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def recorder_node(store: str, cameras: list[str], **params):
    """The recorder as ``collect.launch.py`` starts it (reliable sensor QoS, teleop actions)."""
    from process_launch import NodeLaunch

    base = {"store": store, "robot": "widowx250", "cameras": ",".join(cameras), "width": 64, "height": 48,
            "control_rate_hz": 30.0, "sensor_qos": "reliable", "action_source": "teleop", "encoding": "jpeg",
            "instruction": "put the cube on the grinning face", "max_wait_s": 0.3, "stale_after_s": 0.5}
    return NodeLaunch("recorder_node", params.pop("name", "recorder"), parameters=[{**base, **params}])


class RecorderProbe:
    """The test's view of a recorder over DDS: its status JSON, its diagnostics, its services."""

    def __init__(self, ros, name: str = "/recorder"):
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import String

        from vla_robot.ros.qos import LATCHED_QOS

        self.ros, self.name = ros, name
        self.statuses = ros.subscribe(String, f"{name}/status", qos=LATCHED_QOS)
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")

    def status(self) -> dict:
        return json.loads(self.statuses[-1][1].data) if self.statuses else {}

    def levels(self, since: float = 0.0) -> list[tuple[float, int, str]]:
        """(receive time, level, message) of the recorder's diagnostics received after ``since``."""
        from vla_robot.ros.diagnostics import status_level

        out = []
        for t, msg in list(self.diagnostics):
            for status in msg.status:
                if status.name.startswith(self.name.strip("/") + ":") and t >= since:
                    out.append((t, status_level(type(msg)(status=[status])), status.message))
        return out

    def call(self, service: str, **fields):
        from std_srvs.srv import SetBool, Trigger

        srv = SetBool if service == "save" else Trigger
        return self.ros.call(srv, f"{self.name}/{service}", **fields)

    def wait_status(self, predicate, timeout_s: float = 30.0, what: str = "recorder status"):
        return self.ros.wait_for(lambda: self.statuses and predicate(self.status()), timeout_s=timeout_s,
                                 what=f"{what} (last: {self.status().get('state')}, {self.status().get('problems')})")

    def wait_streams(self, streams, timeout_s: float = 60.0) -> None:
        """Until the recorder sees every stream alive (discovery done, publishers matched)."""
        self.wait_status(lambda s: all(s.get("streams", {}).get(n, {}).get("alive") for n in streams),
                         timeout_s=timeout_s, what=f"streams {list(streams)} alive")
