"""The arm's own guard: stop latches, command watchdog, tracking error and servo faults.

The arm node runs this between every command and the servos, so the arm protects itself
whatever happens upstream (a policy process killed, a teleop unplugged, an arm pushing on
an obstacle). It is plain bookkeeping on a clock; the node applies the holds it returns.

Every hold keeps torque on and holds a pose (stop category 2, IEC 60204-1):

==================  =============================================  ========  ==============
reason              hold target                                    latched   diagnostics
==================  =============================================  ========  ==============
``estop``           last commanded pose                            yes       ERROR
``stop``            last commanded pose                            yes       OK
``command_timeout`` last commanded pose                            optional  WARN
``tracking_error``  measured arm pose, commanded gripper           yes       ERROR
``hardware_error``  last commanded pose                            yes       ERROR
``bus_error``       last commanded pose                            yes       ERROR
==================  =============================================  ========  ==============

"Last commanded pose", not the measured one: holding the measured pose made an arm under
gravity sag a little at every hold and made a closed gripper open onto the object it
held. The tracking-error hold is the exception: the arm is blocked, so the commanded pose
is the one it cannot reach, and pushing on toward it is what the hold must stop.

A latched hold ends only with ``start``; ``start`` is refused while the e-stop is latched
(``release_estop`` first) or a servo still reports a fault. Releasing the e-stop never
moves the arm: the hold stays until ``start``, and after ``start`` the arm moves only when
a new command arrives.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vla_robot.robots.specs import RobotSpec

OK, WARN, ERROR = 0, 1, 2
HOLD_LEVELS = {"estop": ERROR, "stop": OK, "command_timeout": WARN, "tracking_error": ERROR, "hardware_error": ERROR,
               "bus_error": ERROR}


@dataclass
class GuardConfig:
    """``cmd_timeout_s``: no command for this long while following commands -> hold (ros2_control's
    ``cmd_timeout``). Latched when ``cmd_timeout_latch`` (deploy: a restarted policy must not
    resume by itself); unlatched otherwise (collection: a teleop that pauses resumes).
    ``tracking_error``: an arm joint further than this (rad) from its command for
    ``tracking_error_s`` -> latched hold. A healthy servo lags a moving command: its own profile
    (``spec.max_acceleration``, 10 rad/s^2) reaches a command that starts at the 3.14 rad/s limit
    v^2 / 2a = 0.49 rad behind it. The first default (0.35 rad for 0.3 s) tripped on the
    scripted expert in the real-time twin (0.48 rad, shoulder); a blocked joint's error keeps
    growing while the commands go on, so the margin costs little."""

    cmd_timeout_s: float = 0.5
    cmd_timeout_latch: bool = False
    tracking_error: float = 0.6
    tracking_error_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("cmd_timeout_s", "tracking_error", "tracking_error_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"guard.{name}={value!r} must be a positive number")


@dataclass(frozen=True)
class Hold:
    reason: str
    target: np.ndarray
    latched: bool
    message: str

    @property
    def level(self) -> int:
        return HOLD_LEVELS[self.reason]


class ArmGuard:
    def __init__(self, spec: RobotSpec, config: GuardConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.config = config or GuardConfig()
        self.clock = clock
        self.hold: Hold | None = None
        self.estopped = False
        self.faults: dict[int, list[str]] = {}
        self.last_sent: np.ndarray | None = None
        self.max_tracking_error = 0.0
        self.counts: Counter[str] = Counter()
        self._last_command: float | None = None
        self._tracking_since: float | None = None

    # -- commands ------------------------------------------------------------------------
    def admit(self) -> bool:
        """A command arrived: True when it may go to the servos. A latched hold refuses it; an
        unlatched watchdog hold ends with it (the commander is back)."""
        self.counts["commands"] += 1
        if self.hold is not None:
            if self.hold.latched:
                self.counts["refused_while_held"] += 1
                return False
            self.hold = None
            self.counts["resumed"] += 1
        self._last_command = self.clock()
        return True

    def sent(self, targets: np.ndarray) -> None:
        """What reached the servos (after the driver's clamp): the pose every later hold keeps."""
        self.last_sent = np.array(targets, dtype=np.float64)

    def rebase(self, targets: np.ndarray) -> None:
        """The arm was put somewhere else (a twin reset): hold there, and wait for a new first command."""
        self.sent(targets)
        if self.hold is not None:
            self.hold = Hold(self.hold.reason, self.last_sent.copy(), self.hold.latched, self.hold.message)
        self._last_command = None
        self._tracking_since = None

    # -- periodic check --------------------------------------------------------------------
    def check(self, measured: np.ndarray) -> Hold | None:
        """Call with every state read; returns a hold that begins now (None otherwise)."""
        if self.hold is not None or self._last_command is None or self.last_sent is None:
            self._tracking_since = None
            return None
        now = self.clock()
        silent = now - self._last_command
        if silent > self.config.cmd_timeout_s:
            return self._begin("command_timeout", self.last_sent, self.config.cmd_timeout_latch,
                               f"no command for {silent:.2f}s (cmd_timeout {self.config.cmd_timeout_s}s): holding")
        measured = np.asarray(measured, dtype=np.float64)
        error = np.abs(measured[:-1] - self.last_sent[:-1])
        worst = int(np.argmax(error))
        self.max_tracking_error = max(self.max_tracking_error, float(error[worst]))
        if error[worst] <= self.config.tracking_error:
            self._tracking_since = None
            return None
        self._tracking_since = now if self._tracking_since is None else self._tracking_since
        if now - self._tracking_since < self.config.tracking_error_s:
            return None
        target = np.concatenate([measured[:-1], self.last_sent[-1:]])
        joint = self.spec.joint_names[worst]
        return self._begin("tracking_error", target, True,
                           f"{joint} is {error[worst]:.3f} rad from its command for {now - self._tracking_since:.2f}s "
                           f"(limit {self.config.tracking_error} rad): blocked? holding where it is")

    def report_faults(self, faults: dict[int, list[str]], measured: np.ndarray) -> Hold | None:
        """Servo id -> fault names from the hardware-error registers; a new fault begins a hold."""
        new = {sid: names for sid, names in faults.items() if names and self.faults.get(sid) != names}
        self.faults = {sid: names for sid, names in faults.items() if names}
        if not new:
            return None
        text = "; ".join(f"servo {sid}: {', '.join(names)}" for sid, names in sorted(new.items()))
        self.counts["hardware_errors"] += 1
        if self.hold is not None and self.hold.latched:
            self.hold = Hold("hardware_error", self.hold.target, True, f"servo fault while held: {text}")
            return None
        return self._begin("hardware_error", self._target(measured), True, f"servo fault: {text}")

    def bus_lost(self, message: str) -> Hold | None:
        """The servo bus stopped answering (a servo unplugged, the supply cut): hold what still listens."""
        self.counts["bus_lost"] += 1
        if (self.hold is not None and self.hold.latched) or self.last_sent is None:
            return None  # already held, or nothing was ever sent (the servos keep their power-on goal)
        return self._begin("bus_error", self.last_sent, True, f"servo bus: {message}")

    # -- operator --------------------------------------------------------------------------
    def estop(self, measured: np.ndarray, source: str = "operator") -> Hold:
        self.estopped = True
        if self.hold is not None and self.hold.latched:
            self.hold = Hold("estop", self.hold.target, True, f"e-stop ({source})")
            self.counts["estop"] += 1
            return self.hold
        return self._begin("estop", self._target(measured), True, f"e-stop ({source})")

    def stop(self, measured: np.ndarray, source: str = "operator") -> Hold:
        if self.hold is not None and self.hold.latched:
            return self.hold  # already held: a stop changes nothing, and never clears an e-stop
        return self._begin("stop", self._target(measured), True, f"stopped ({source})")

    def release_estop(self) -> str:
        if not self.estopped:
            return "no e-stop latched"
        self.estopped = False
        return "e-stop released; the arm keeps holding until ~/start"

    def start(self) -> tuple[bool, str]:
        if self.estopped:
            return False, "e-stop is latched: call ~/release_estop first"
        if self.faults:
            text = "; ".join(f"servo {sid}: {', '.join(n)}" for sid, n in sorted(self.faults.items()))
            return False, f"servo faults persist ({text}); clear them (power-cycle or reboot the servo) first"
        was = self.hold
        self.hold = None
        self._last_command = None  # the watchdog re-arms with the first new command
        self._tracking_since = None
        return True, "following commands" if was is None else f"following commands (was holding: {was.reason})"

    # -- internals -------------------------------------------------------------------------
    def _target(self, measured: np.ndarray) -> np.ndarray:
        return self.last_sent.copy() if self.last_sent is not None else np.array(measured, dtype=np.float64)

    def _begin(self, reason: str, target: np.ndarray, latched: bool, message: str) -> Hold:
        self.hold = Hold(reason, np.array(target, dtype=np.float64), latched, message)
        self.counts[reason] += 1
        self._tracking_since = None
        return self.hold

    @property
    def level(self) -> int:
        if self.estopped or self.faults:
            return ERROR
        return self.hold.level if self.hold is not None else OK

    def report(self) -> dict:
        hold = self.hold
        return {
            "state": "following" if hold is None else f"holding ({hold.reason})",
            "latched": bool(hold is not None and hold.latched),
            "estopped": self.estopped,
            "hold_reason": "" if hold is None else hold.reason,
            "hold_message": "" if hold is None else hold.message,
            "faults": "; ".join(f"{sid}: {', '.join(n)}" for sid, n in sorted(self.faults.items())),
            "max_tracking_error_rad": self.max_tracking_error,
            **{f"count.{k}": int(v) for k, v in sorted(self.counts.items())},
        }
