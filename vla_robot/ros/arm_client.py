"""The arm's stop, e-stop and start, as an operator tool reaches them (docs/deploy.md, safety page).

The arm node's e-stop is a latched, controlled stop: it holds the last commanded pose with
torque on and refuses commands until ``~/release_estop`` and then ``~/start``. What this client
uses of it:

* ``/estop`` (std_msgs/Bool, true): the topic a foot switch publishes on. The e-stop goes out
  there first, with no round trip, and reaches every node that listens (the arm, a policy);
* ``<arm>/estop`` (std_srvs/Trigger): then the service, whose answer says whether the hold was
  written to the servos;
* ``<arm>/release_estop`` and ``<arm>/start`` (Trigger): resuming, only on an explicit request;
* ``/diagnostics`` (the arm's status, once a second): whether it is e-stopped or holding, and why,
  so every open page shows the latched state, not only the one that pressed the button.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_robot.ros.qos import COMMAND_QOS
from vla_robot.ros.service_client import Answer, ServiceClients

LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


class ArmClient:
    STATUS_STALE_S = 3.5  # the arm publishes diagnostics once a second

    def __init__(self, node, arm: str = "/arm", estop_topic: str = "/estop", timeout_s: float = 5.0):
        self.arm = "/" + arm.strip("/")
        self.diagnostics_name = f"{self.arm.lstrip('/')}: arm"  # the arm node's DiagnosticStatus name
        self.services = ServiceClients(node, {name: (Trigger, f"{self.arm}/{name}")
                                              for name in ("estop", "release_estop", "start")}, timeout_s)
        self._estop_pub = node.create_publisher(Bool, estop_topic, COMMAND_QOS) if estop_topic else None
        self.estop_topic = estop_topic
        self._status: dict = {}
        self._status_at: float | None = None
        self._lock = threading.Lock()
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name != self.diagnostics_name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            level = status.level[0] if isinstance(status.level, (bytes, bytearray)) else int(status.level)
            with self._lock:
                self._status = {
                    "level": LEVELS.get(level, str(level)), "message": status.message,
                    "estopped": values.get("estopped") == "True",
                    "latched": values.get("guard.latched") == "True",
                    "state": values.get("guard.state", ""), "hold_reason": values.get("guard.hold_reason", ""),
                }
                self._status_at = time.monotonic()

    def status(self) -> dict:
        """The arm's last reported state plus ``reachable`` (its diagnostics are fresh)."""
        with self._lock:
            status, at = dict(self._status), self._status_at
        status["reachable"] = at is not None and time.monotonic() - at < self.STATUS_STALE_S
        status["name"] = self.arm
        return status

    def estop(self) -> Answer:
        """Topic first (no round trip, every listener), then the service for a confirmed answer."""
        if self._estop_pub is not None:
            self._estop_pub.publish(Bool(data=True))
        answer = self.services.trigger("estop")
        if not answer.ok and self._estop_pub is not None:
            return Answer(False, f"{answer.message}; e-stop also published on {self.estop_topic}, unconfirmed")
        return answer

    def resume(self) -> Answer:
        """Release a latched e-stop (if any) and start: the arm follows commands again."""
        if self.status().get("estopped", True):  # unknown counts as e-stopped: releasing twice is harmless
            released = self.services.trigger("release_estop")
            if not released.ok:
                return released
        started = self.services.trigger("start")
        with self._lock:  # the page shows the new state at once, not after the next diagnostics
            if started.ok and self._status:
                self._status.update(estopped=False, latched=False, state="following", hold_reason="")
        return started
