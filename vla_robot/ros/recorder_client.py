"""Episode control through the recorder's and the arm's ROS interfaces, as any operator tool sees them.

This is the one place that knows those interfaces (service names and types, the status
topic), so the web console never reaches into the recorder's process or classes, and a
change to the recorder's services is an edit here only:

* ``<recorder>/start`` (std_srvs/Trigger), ``<recorder>/save`` (std_srvs/SetBool, data = success),
  ``<recorder>/discard`` (std_srvs/Trigger);
* ``<recorder>/set_parameters`` (``instruction``), what ``ros2 param set /recorder instruction ...`` calls;
* ``<recorder>/status`` (std_msgs/String, JSON, published once a second);
* the arm's e-stop, ``/arm/estop`` (std_srvs/Trigger).

Calls block the calling thread (the web server runs them in a worker thread) until the
service answers or ``timeout_s`` passes; a missing service is an answer too, never a hang.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

# The actions an operator can ask for; the terminal console's keys (recorder/console.py) name
# the same ones, so the page's shortcuts and buttons map onto this one vocabulary.
ACTIONS = ("start", "save_success", "save_failure", "discard", "rerecord", "toggle")


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: str

    def as_dict(self) -> dict:
        return {"ok": self.ok, "message": self.message}


class RecorderClient:
    STATUS_STALE_S = 3.5  # the recorder publishes status at 1 Hz; three missed in a row means it is gone

    def __init__(self, node, recorder: str = "/recorder", estop_service: str = "/arm/estop", timeout_s: float = 5.0):
        self.node = node
        self.recorder = recorder.rstrip("/")
        self.timeout_s = timeout_s
        self._clients = {
            "start": (Trigger, node.create_client(Trigger, f"{self.recorder}/start")),
            "save": (SetBool, node.create_client(SetBool, f"{self.recorder}/save")),
            "discard": (Trigger, node.create_client(Trigger, f"{self.recorder}/discard")),
            "set_parameters": (SetParameters, node.create_client(SetParameters, f"{self.recorder}/set_parameters")),
            "estop": (Trigger, node.create_client(Trigger, estop_service)),
        }
        self._status: dict = {}
        self._status_at: float | None = None
        self._own: tuple[bool, float] | None = None  # recording or not, as our last answered call left it
        self._lock = threading.Lock()
        node.create_subscription(String, f"{self.recorder}/status", self._on_status, 10)

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

        Status comes once a second; a space bar pressed twice within that second must stop the
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
    def _call(self, name: str, **fields) -> Answer:
        srv_type, client = self._clients[name]
        if not client.wait_for_service(timeout_sec=min(self.timeout_s, 2.0)):
            return Answer(False, f"{client.srv_name} is not available: is the node running in this ROS domain?")
        done = threading.Event()
        future = client.call_async(srv_type.Request(**fields))
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.timeout_s):
            future.cancel()
            return Answer(False, f"{client.srv_name} did not answer within {self.timeout_s:g} s")
        response = future.result()
        if name == "set_parameters":
            result = response.results[0]
            return Answer(bool(result.successful), result.reason or "instruction set")
        return Answer(bool(response.success), response.message)

    def start(self) -> Answer:
        return self._note(self._call("start"), True)

    def save(self, success: bool) -> Answer:
        return self._note(self._call("save", data=bool(success)), False)

    def discard(self) -> Answer:
        return self._note(self._call("discard"), False)

    def estop(self) -> Answer:
        return self._call("estop")

    def set_instruction(self, text: str) -> Answer:
        text = text.strip()
        if not text:
            return Answer(False, "the instruction is empty; type what the robot should do")
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=text)
        return self._call("set_parameters", parameters=[Parameter(name="instruction", value=value)])

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
