"""The always-on safety layer between a policy and an arm.

Rules, in order, each counted every time it fires:

1. e-stop (latched until ``reset_estop``): hold position;
2. watchdog: observation older than ``max_obs_age_s``, or no action for longer than
   ``max_inference_stall_s``: hold position;
3. no action this step (queue empty): hold position;
4. a NaN/Inf or wrongly shaped action, or an IK failure: hold position and raise an alert;
5. end-effector actions: the target is clamped into the workspace box before IK;
6. joint position and velocity limits through the shared ``JointLimitClamp``;
7. joint-space actions: forward kinematics keeps the TCP in the workspace box and above
   the table plane (``vla_robot.policy.workspace``).

"Hold" means the last commanded pose (the measured one only before any command), latched
when holding begins, so a long hold never drifts. Holding the measured pose instead made
every hold jump the command back by the arm's tracking lag, let an arm under gravity sag
a little further at each hold (with ``--request-threshold 0`` that was every chunk
boundary) and opened a closed gripper onto the object it held. Velocity limits apply to
the change between successive *commanded* targets, which bounds how fast the command
moves even when the arm lags behind it, and makes resuming from a hold smooth.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vla_robot.policy.config import SafetyConfig
from vla_robot.robots.limits import JointLimitClamp
from vla_robot.robots.specs import RobotSpec

log = logging.getLogger(__name__)

EVENTS = (
    "estop",
    "stale_observation",
    "inference_stall",
    "no_action",
    "non_finite_action",
    "bad_shape_action",
    "bad_chunk",
    "ik_error",
    "workspace_clamp",
    "position_clamp",
    "velocity_clamp",
    "hold",
)
ALERT_EVENTS = frozenset({"estop", "stale_observation", "inference_stall", "non_finite_action", "bad_shape_action",
                          "bad_chunk", "ik_error"})


@dataclass
class SafetyDecision:
    targets: np.ndarray
    holding: bool
    events: list[str] = field(default_factory=list)


class WorkspaceBox:
    """Axis-aligned end-effector box in the robot base frame (metres)."""

    def __init__(self, low: tuple[float, float, float], high: tuple[float, float, float]) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)

    def clamp(self, position: np.ndarray) -> tuple[np.ndarray, bool]:
        clamped = np.clip(position, self.low, self.high)
        return clamped, not np.array_equal(clamped, position)


class SafetyLayer:
    def __init__(
        self,
        spec: RobotSpec,
        config: SafetyConfig | None = None,
        period_s: float = 0.1,
        on_alert: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.config = config or SafetyConfig()
        self.period_s = period_s
        scaled = dataclasses.replace(spec, max_velocity=tuple(v * self.config.velocity_scale for v in spec.max_velocity))
        self.clamp = JointLimitClamp(scaled)
        self.workspace = WorkspaceBox(self.config.workspace_low, self.config.workspace_high)
        self.joint_workspace = None
        if self.config.joint_workspace:
            from vla_robot.policy.workspace import JointWorkspaceGuard

            self.joint_workspace = JointWorkspaceGuard(spec.name, self.config.workspace_low, self.config.workspace_high,
                                                       self.config.table_z, self.config.table_clearance)
        self.on_alert = on_alert
        self.counts: Counter[str] = Counter()
        self.alerts: list[tuple[str, str]] = []
        self.estopped = False
        self._hold: np.ndarray | None = None
        self._last_command: np.ndarray | None = None

    # -- e-stop -------------------------------------------------------------------------
    def estop(self, reason: str = "operator") -> None:
        if not self.estopped:
            self._event("estop", f"e-stop: {reason}")
        self.estopped = True

    def reset_estop(self) -> None:
        self.estopped = False

    def reset(self) -> None:
        """Forget the hold and rate-limiter state (new episode); counters persist."""
        self._hold = None
        self._last_command = None

    # -- the per-step filter --------------------------------------------------------------
    def alert(self, name: str, message: str) -> None:
        """Count and report an event found outside the filter (a refused chunk)."""
        self._event(name, message)

    def filter(
        self,
        action: np.ndarray | None,
        measured: np.ndarray,
        obs_age_s: float = 0.0,
        stall_s: float = 0.0,
        workspace: bool = True,
    ) -> SafetyDecision:
        """Safe joint targets for this step from a joint-space ``action`` (or None)."""
        measured = np.asarray(measured, dtype=np.float64)
        if self.estopped:
            return self._holding(measured, ["estop"], count=False)
        if not np.isfinite(obs_age_s) or obs_age_s > self.config.max_obs_age_s:
            return self._holding(measured, ["stale_observation"], f"observation is {obs_age_s:.3f}s old")
        if stall_s > self.config.max_inference_stall_s:
            return self._holding(measured, ["inference_stall"], f"no action for {stall_s:.3f}s")
        if action is None:
            return self._holding(measured, ["no_action"])
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.spec.dof,):
            return self._holding(
                measured, ["bad_shape_action"], f"action shape {action.shape}, expected ({self.spec.dof},)"
            )
        if not np.all(np.isfinite(action)):
            bad = [self.spec.joint_names[i] for i in np.flatnonzero(~np.isfinite(action))]
            return self._holding(measured, ["non_finite_action"], f"non-finite action for joints {bad}")
        return self._limit(action, measured, [], workspace)

    def filter_ee(
        self,
        action: np.ndarray | None,
        ee_position: np.ndarray,
        measured: np.ndarray,
        to_joints: Callable[[np.ndarray], np.ndarray],
        obs_age_s: float = 0.0,
        stall_s: float = 0.0,
    ) -> SafetyDecision:
        """End-effector delta action (dx, dy, dz, droll, dpitch, dyaw, gripper).

        The position target ``ee_position + delta`` is clamped into the workspace box,
        then ``to_joints`` (the arm's IK) turns the safe EE action into joint targets,
        which go through the joint rules above.
        """
        action = None if action is None else np.asarray(action, dtype=np.float64)
        if action is not None and action.shape == (7,) and np.all(np.isfinite(action)):
            target, clamped = self.workspace.clamp(np.asarray(ee_position, dtype=np.float64) + action[:3])
            events = []
            if clamped:
                self._event("workspace_clamp")
                events.append("workspace_clamp")
                action = action.copy()
                action[:3] = target - ee_position
            try:
                joints = to_joints(action)
            except Exception as exc:  # an IK that cannot solve holds; it never ends the tick
                return self._holding(np.asarray(measured, dtype=np.float64), ["ik_error"], f"IK failed: {exc}")
            decision = self.filter(joints, measured, obs_age_s, stall_s)
            decision.events = events + decision.events
            return decision
        if action is not None and action.shape != (7,):
            return self._holding(np.asarray(measured, dtype=np.float64), ["bad_shape_action"], f"EE action shape {action.shape}, expected (7,)")
        if action is not None:
            return self._holding(np.asarray(measured, dtype=np.float64), ["non_finite_action"], "non-finite EE action")
        return self.filter(None, measured, obs_age_s, stall_s)

    # -- internals ----------------------------------------------------------------------
    def _limit(self, action: np.ndarray, measured: np.ndarray, events: list[str], workspace: bool = True) -> SafetyDecision:
        self._hold = None
        reference = self._last_command if self._last_command is not None else measured
        pos_before, vel_before = self.clamp.position_clamps, self.clamp.velocity_clamps
        targets = self.clamp(action, current=reference, dt=self.period_s)
        if self.clamp.position_clamps > pos_before:
            self._event("position_clamp")
            events.append("position_clamp")
        if self.clamp.velocity_clamps > vel_before:
            self._event("velocity_clamp")
            events.append("velocity_clamp")
        if workspace and self.joint_workspace is not None:
            targets, clamped = self.joint_workspace.limit(reference, targets)
            if clamped:
                self._event("workspace_clamp")
                events.append("workspace_clamp")
        self._last_command = targets
        return SafetyDecision(targets=targets, holding=False, events=events)

    def _holding(self, measured: np.ndarray, events: list[str], message: str = "", count: bool = True) -> SafetyDecision:
        if count:
            for name in events:
                self._event(name, message)
        self.counts["hold"] += 1
        if self._hold is None:
            if self._last_command is not None:  # the last command: no jump, no sag, the grip kept
                self._hold = self._last_command.copy()
            else:  # nothing commanded yet: where the arm is (a non-finite reading falls back to home)
                home = np.asarray(self.spec.home, dtype=np.float64)
                self._hold = np.clip(np.where(np.isfinite(measured), measured, home), self.spec.lower_array,
                                     self.spec.upper_array)
        self._last_command = self._hold.copy()
        return SafetyDecision(targets=self._hold.copy(), holding=True, events=list(events))

    def _event(self, name: str, message: str = "") -> None:
        self.counts[name] += 1
        if name in ALERT_EVENTS:
            text = message or name
            self.alerts.append((name, text))
            if len(self.alerts) > 100:
                del self.alerts[:-100]
            log.warning("safety %s: %s", name, text)
            if self.on_alert is not None:
                self.on_alert(name, text)

    def report(self) -> dict[str, int]:
        return {name: int(self.counts.get(name, 0)) for name in EVENTS}
