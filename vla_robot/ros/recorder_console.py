"""`vla-robot console`: the operator's keyboard for a recorder started by ``ros2 launch``.

``ros2 launch`` gives its nodes no keyboard, so the console runs in its own terminal and talks
to the recorder only as any other client would: its services (``<recorder>/start``,
``<recorder>/save``, ``<recorder>/discard``) and its status topic (``<recorder>/status``, JSON,
latched). Same keys as the recorder's own console (space, f, d, r; q quits the console only, the
recorder keeps running), one live status line with per-stream skew and dropped steps.

It joins the operator's ROS domain: it never sets ``ROS_DOMAIN_ID`` itself, so run it in a shell
with the same ``ROS_DOMAIN_ID`` as the launch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

STATUS_TIMEOUT_S = 3.0  # no status for this long: say the recorder cannot be reached


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recorder", default="/recorder",
                        help="the recorder node's full name; its services and status hang below it (default /recorder)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the recorder to answer a command (a save waits for frames in transit)")


class RecorderClient:
    """Services and status topic of one recorder, on a private rclpy context spun in a thread."""

    def __init__(self, recorder: str, timeout_s: float = 30.0):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from std_msgs.msg import String
        from std_srvs.srv import SetBool, Trigger

        from vla_robot.ros.qos import LATCHED_QOS

        self.recorder = "/" + recorder.strip("/")
        self.timeout_s = timeout_s
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(f"recorder_console_{os.getpid()}", context=self.context)
        self.status: dict = {}
        self.status_time: float | None = None
        self.node.create_subscription(String, f"{self.recorder}/status", self._on_status, LATCHED_QOS)
        self.clients = {"start": (Trigger, self.node.create_client(Trigger, f"{self.recorder}/start")),
                        "save": (SetBool, self.node.create_client(SetBool, f"{self.recorder}/save")),
                        "discard": (Trigger, self.node.create_client(Trigger, f"{self.recorder}/discard"))}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="console-ros", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown race
            pass

    def _on_status(self, msg) -> None:
        try:
            self.status = json.loads(msg.data)
            self.status_time = time.monotonic()
        except ValueError:
            pass

    def call(self, name: str, **fields) -> tuple[bool, str]:
        """Call ``start`` / ``save`` (``data`` = success) / ``discard``; (success, message), never raises."""
        srv, client = self.clients[name]
        if not client.wait_for_service(timeout_sec=min(self.timeout_s, 5.0)):
            return False, f"{self.recorder}/{name} is not available (is the recorder running in ROS_DOMAIN_ID=" \
                          f"{os.environ.get('ROS_DOMAIN_ID', '0 (unset)')}?)"
        future = client.call_async(srv.Request(**fields))
        deadline = time.monotonic() + self.timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                return False, f"{self.recorder}/{name} did not answer within {self.timeout_s:.0f} s"
            time.sleep(0.01)
        response = future.result()
        return bool(response.success), response.message

    def reachable(self) -> bool:
        return self.status_time is not None and time.monotonic() - self.status_time < STATUS_TIMEOUT_S

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            self.context.try_shutdown()
        self._thread.join(timeout=2.0)


class RemoteConsole:
    """Keys -> recorder services; status topic -> the live line."""

    def __init__(self, client: RecorderClient, out=None, stdin=None):
        from vla_robot.recorder.console import OperatorConsole

        self.client = client
        self.console = OperatorConsole(self.act, stream=out, stdin=stdin)
        self._stop = threading.Event()

    def act(self, action: str) -> None:
        recording = bool(self.client.status.get("recording"))
        plan = {"toggle": [("save", {"data": True})] if recording else [("start", {})],
                "save_failure": [("save", {"data": False})],
                "discard": [("discard", {})],
                "rerecord": ([("discard", {})] if recording else []) + [("start", {})]}.get(action, [])
        for name, fields in plan:
            ok, message = self.client.call(name, **fields)
            self.console.say(f"{name}: {message}" if ok else f"{name} refused: {message}")

    def _refresh(self) -> None:
        from vla_robot.recorder.console import status_line

        while not self._stop.wait(0.25):
            if self.client.reachable():
                self.console.show_line(status_line(self.client.status))
            else:
                self.console.show_line(f"waiting for {self.client.recorder}/status (ROS_DOMAIN_ID="
                                       f"{os.environ.get('ROS_DOMAIN_ID', 'unset')}; is the recorder running?)")

    def run(self) -> None:
        from vla_robot.recorder.console import HELP

        self.console.out.write(HELP + "\n")
        refresher = threading.Thread(target=self._refresh, name="console-status", daemon=True)
        refresher.start()
        try:
            self.console.read_keys()
        finally:
            self._stop.set()
            refresher.join(timeout=1.0)
            self.console.say("console closed; the recorder keeps running")


def run(args: argparse.Namespace) -> int:
    client = RecorderClient(args.recorder, timeout_s=args.timeout)
    try:
        RemoteConsole(client).run()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-robot console", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
