"""Episode control through the recorder's ROS interfaces, as any operator tool sees them.

This is the one place that knows those interfaces (service names and types, the status
topic), so the web console never reaches into the recorder's process or classes, and a
change to the recorder's services is an edit here only:

* ``<recorder>/start`` (std_srvs/Trigger), ``<recorder>/save`` (std_srvs/SetBool, data = success),
  ``<recorder>/discard`` (std_srvs/Trigger);
* ``<recorder>/set_parameters`` (``instruction``), what ``ros2 param set /recorder instruction ...`` calls;
* ``<recorder>/status`` (std_msgs/String, JSON, latched, 4 Hz and on every change; fields in
  docs/collect.md, "Recorder status").

The arm's stop services are arm_client.py's. Calls block the calling thread (the web server
runs them in a worker thread) until the service answers or ``timeout_s`` passes; a missing
service is an answer too, never a hang.
"""

from __future__ import annotations

import json
import threading
import time

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from vla_robot.ros.qos import LATCHED_QOS
from vla_robot.ros.service_client import Answer, ServiceClients

# The actions an operator can ask for; the terminal console's keys (recorder/console.py) name
# the same ones, so the page's shortcuts and buttons map onto this one vocabulary.
ACTIONS = ("start", "save_success", "save_failure", "discard", "rerecord", "toggle")


class RecorderClient:
    STATUS_STALE_S = 2.0  # the recorder publishes status 4 times a second; 8 missed in a row means it is gone

    def __init__(self, node, recorder: str = "/recorder", timeout_s: float = 5.0):
        self.node = node
        self.recorder = recorder.rstrip("/")
        self.services = ServiceClients(node, {
            "start": (Trigger, f"{self.recorder}/start"),
            "save": (SetBool, f"{self.recorder}/save"),
            "discard": (Trigger, f"{self.recorder}/discard"),
            "set_parameters": (SetParameters, f"{self.recorder}/set_parameters"),
        }, timeout_s)
        self._status: dict = {}
        self._status_at: float | None = None
        self._own: tuple[bool, float] | None = None  # recording or not, as our last answered call left it
        self._lock = threading.Lock()
        node.create_subscription(String, f"{self.recorder}/status", self._on_status, LATCHED_QOS)

    # -- status --------------------------------------------------------------------------
    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self._status, self._status_at = status, time.monotonic()

    def status(self) -> dict:
        """The recorder's last status, plus ``reachable`` and ``status_age_s`` (None before the first)."""
        with self._lock:
            status, at = dict(self._status), self._status_at
        age = None if at is None else time.monotonic() - at
        status["reachable"] = age is not None and age < self.STATUS_STALE_S
        status["status_age_s"] = age
        return status

    @property
    def recording(self) -> bool:
        """Whether an episode is recording: the status, unless one of our own calls answered since.

        Status comes every 0.25 s; a space bar pressed twice within that time must stop the
        episode the first press started, not try to start another.
        """
        with self._lock:
            status, at, own = self._status, self._status_at, self._own
        if own is not None and (at is None or own[1] >= at):
            return own[0]
        return bool(status.get("recording"))

    def _note(self, answer: "Answer", recording: bool) -> "Answer":
        if answer.ok:
            with self._lock:
                self._own = (recording, time.monotonic())
        return answer

    # -- calls ---------------------------------------------------------------------------
    def start(self) -> Answer:
        return self._note(self.services.trigger("start"), True)

    def save(self, success: bool) -> Answer:
        return self._note(self.services.trigger("save", data=bool(success)), False)

    def discard(self) -> Answer:
        return self._note(self.services.trigger("discard"), False)

    def set_instruction(self, text: str) -> Answer:
        text = text.strip()
        if not text:
            return Answer(False, "the instruction is empty; type what the robot should do")
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=text)
        response = self.services.call("set_parameters", parameters=[Parameter(name="instruction", value=value)])
        if isinstance(response, Answer):
            return response
        result = response.results[0]
        return Answer(bool(result.successful), result.reason or "instruction set")

    def act(self, action: str) -> Answer:
        """One operator action by name (``ACTIONS``): what a button or a shortcut key asks for."""
        if action == "start":
            return self.start()
        if action == "save_success":
            return self.save(True)
        if action == "save_failure":
            return self.save(False)
        if action == "discard":
            return self.discard()
        if action == "toggle":  # the terminal console's space bar: start, or stop and save as a success
            return self.save(True) if self.recording else self.start()
        if action == "rerecord":
            if self.recording:
                dropped = self.discard()
                if not dropped.ok:
                    return dropped
            return self.start()
        return Answer(False, f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
