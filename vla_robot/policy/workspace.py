"""The workspace guard for joint-space policies: forward kinematics, a TCP box and the table plane.

An ``ee_delta`` policy's targets are clamped into the box before IK (``SafetyLayer.filter_ee``).
A joint-space policy names joint angles, and a joint target inside every joint limit can
still put the gripper through the table. So every joint target goes through the arm's
forward kinematics (``sim.kinematics``: the twin's own arm model, the links the twin
simulates) and the TCP must stay inside ``box`` and at least ``clearance`` above the
table plane ``table_z``.

A target outside is not replaced by some other pose (joint space has no "nearest legal
pose" without IK): the step from the last command is cut back to the largest fraction
that keeps the TCP inside, found by bisection. Steps are small (one control period at
the velocity limit), so checking the end of each step checks the path. When the last
command itself is outside (the arm was put there by hand), a step is allowed only if it
does not go further out.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def _kinematics(robot: str):
    from sim.kinematics import ArmKinematics

    return ArmKinematics(robot)


class JointWorkspaceGuard:
    def __init__(self, robot: str, low, high, table_z: float = 0.0, clearance: float = 0.005,
                 bisections: int = 10) -> None:
        self.kinematics = _kinematics(robot)
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64).copy()
        self.low = np.maximum(self.low, [-np.inf, -np.inf, table_z + clearance])
        self.bisections = bisections

    def violation(self, q: np.ndarray) -> float:
        """How far (m) the TCP at ``q`` is outside the allowed region (0 inside)."""
        tcp = self.kinematics.tcp(q)
        return float(np.linalg.norm(np.maximum(self.low - tcp, 0) + np.maximum(tcp - self.high, 0)))

    def limit(self, reference: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
        """``target`` if its TCP is allowed, else the allowed part of the step from ``reference``.

        Returns (targets, clamped). The gripper value of ``target`` is kept either way: opening
        or closing the gripper does not move the TCP.
        """
        target = np.asarray(target, dtype=np.float64)
        reference = np.asarray(reference, dtype=np.float64)
        outside_now, outside_next = self.violation(reference), self.violation(target)
        if outside_next == 0 or (outside_now > 0 and outside_next <= outside_now):
            return target, False
        if outside_now > 0:
            out = reference.copy()
            out[-1] = target[-1]
            return out, True
        lo, hi = 0.0, 1.0  # lo: known inside, hi: known outside
        for _ in range(self.bisections):
            mid = (lo + hi) / 2
            if self.violation(reference + mid * (target - reference)) == 0:
                lo = mid
            else:
                hi = mid
        out = reference + lo * (target - reference)
        out[-1] = target[-1]
        return out, True
