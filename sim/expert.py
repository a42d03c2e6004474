"""``ScriptedExpert``: privileged, IK-based demonstrations for every twin task.

It reads the true cube and card poses from the twin (a demonstrator may cheat; the policy
learning from it only sees images and instructions), plans Cartesian waypoints for the
tool centre point, interpolates them at a bounded speed and converts each point to joint
targets with damped-least-squares IK. One ``act()`` is one control period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.ik import DampedLeastSquaresIK, top_down_quat
from sim.tasks import PUSH_DIRECTIONS
from sim.twin import Twin

# The expert moves each joint at most this fraction of its velocity limit per control period.
# Its raw plan closed the gripper 0.022 m in one 0.1 s period (2.2x the WidowX's 0.1 m/s) and
# jumped the shoulder 0.40 rad on its first step; clamped by the arm to exactly the limit, the
# recorded commands sat on it, and a policy reproducing them overshot it by a hair on about
# one step in twenty: each one a velocity clamp in the eval. With 20 % margin they do not.
VELOCITY_MARGIN = 0.8


@dataclass
class Segment:
    """Move the TCP to ``pos`` in ``steps`` control periods with the gripper at ``gripper``."""

    pos: np.ndarray
    steps: int
    gripper: float
    name: str


def _wrap(a: float) -> float:
    return (a + np.pi) % (2 * np.pi) - np.pi


class ScriptedExpert:
    def __init__(self, twin: Twin, speed: float = 0.25, approach_speed: float = 0.12):
        self.twin = twin
        self.spec = twin.spec
        self.ik = DampedLeastSquaresIK(twin.model, "tcp", self.spec.joint_names[:-1])
        self.speed = speed
        self.approach_speed = approach_speed
        self._plan_for: object = None
        self.segments: list[Segment] = []
        self.reset()

    # ----------------------------------------------------------------- planning
    def reset(self) -> None:
        """Plan for the twin's current episode (``act`` calls it after every twin reset)."""
        tw = self.twin
        self._plan_for = tw.episode
        self._q = tw.joint_positions()[:-1]
        self._pos, _ = tw.ee_pose()
        self._gripper = self.spec.gripper_open
        self._command = tw.joint_positions()  # what the expert last asked for (velocity-limited)
        self._seg = 0
        self._t = 0
        self._seg_start = self._pos.copy()
        self._origin = self._pos.copy()  # where the plan starts (the time-based ``action_at`` walks from it)
        task = tw.episode.task
        self.segments = {"grinning_face": self._plan_pick_place, "reach": self._plan_reach, "push": self._plan_push}[task]()

    plan = reset

    def _grasp_yaw(self, xy: np.ndarray, cube_yaw: float) -> float:
        natural = np.arctan2(xy[1], xy[0]) + np.pi / 2
        candidates = [cube_yaw + k * np.pi / 2 for k in range(-4, 5)]
        return min(candidates, key=lambda c: abs(_wrap(c - natural)))

    def _steps(self, a: np.ndarray, b: np.ndarray, speed: float) -> int:
        return max(1, int(np.ceil(np.linalg.norm(b - a) / (speed * self.twin.control_period))))

    def _route(self, points: list[tuple[np.ndarray, float, str, float]]) -> list[Segment]:
        out, prev = [], self._pos
        for pos, grip, name, speed in points:
            steps = self._steps(prev, pos, speed) if speed > 0 else int(-speed)
            out.append(Segment(np.asarray(pos, float), steps, grip, name))
            prev = pos
        return out

    def _plan_pick_place(self) -> list[Segment]:
        tw, arm = self.twin, self.twin.arm
        cube = tw.cube_position()
        card = tw.layout.card_xy[tw.episode.target_index]
        c = arm.cube_size / 2
        self._yaw = self._grasp_yaw(cube[:2], tw.layout.cube_yaw)
        grasp_z = c + arm.tcp_grasp_offset
        op, cl = self.spec.gripper_open, self.spec.gripper_closed
        pts = [
            (np.array([*cube[:2], arm.hover]), op, "above_cube", self.speed),
            (np.array([*cube[:2], grasp_z + 0.03]), op, "approach", self.speed),
            (np.array([*cube[:2], grasp_z]), op, "descend", self.approach_speed),
            (np.array([*cube[:2], grasp_z]), cl, "close", -6),
            (np.array([*cube[:2], arm.hover]), cl, "lift", self.approach_speed),
            (np.array([*card, arm.hover]), cl, "carry", self.speed),
            (np.array([*card, grasp_z + 0.008]), cl, "lower", self.approach_speed),
            (np.array([*card, grasp_z + 0.008]), op, "release", -5),
            (np.array([*card, arm.hover]), op, "retreat", self.speed),
        ]
        return self._route(pts)

    def _plan_reach(self) -> list[Segment]:
        tw, arm = self.twin, self.twin.arm
        card = tw.layout.card_xy[tw.episode.target_index]
        self._yaw = np.arctan2(card[1], card[0]) + np.pi / 2
        op = self.spec.gripper_open
        return self._route([
            (np.array([*card, arm.hover]), op, "above_card", self.speed),
            (np.array([*card, 0.6 * arm.hover]), op, "lower", self.approach_speed),
            (np.array([*card, 0.6 * arm.hover]), op, "hold", -3),
        ])

    def _plan_push(self) -> list[Segment]:
        tw, arm = self.twin, self.twin.arm
        cube = tw.cube_position()
        d = PUSH_DIRECTIONS[tw.episode.target]
        c = arm.cube_size / 2
        direction3 = np.array([*d, 0.0])
        self._yaw = float(np.arctan2(d[1], d[0]))
        start = cube - direction3 * (c + 0.035)
        end = cube + direction3 * (1.6 * arm.cube_size + 0.04)
        z = c + 0.014
        cl = self.spec.gripper_closed
        return self._route([
            (np.array([*start[:2], arm.hover]), cl, "above_start", self.speed),
            (np.array([*start[:2], z]), cl, "lower", self.speed),
            (np.array([*end[:2], z]), cl, "push", 0.6 * self.approach_speed),
            (np.array([*end[:2], arm.hover]), cl, "retreat", self.speed),
        ])

    # ----------------------------------------------------------------- acting
    @property
    def done(self) -> bool:
        """True once the plan for the twin's current episode has been played out."""
        if self._plan_for is not self.twin.episode:
            return False
        return self._seg >= len(self.segments)

    @property
    def phase(self) -> str:
        if self._plan_for is not self.twin.episode:
            return "planning"
        return "done" if self.done else self.segments[self._seg].name

    def _solve(self, pos: np.ndarray, gripper: float) -> np.ndarray:
        """Joint targets putting the TCP at ``pos``, warm-started from the last solution."""
        self._q, _ = self.ik.solve(pos, top_down_quat(self._yaw), self._q)
        self._gripper = gripper
        return np.append(self._q, self._gripper)

    def next_action(self) -> np.ndarray:
        """Step-based: each call is the next control period (the lock-stepped twin)."""
        if self._plan_for is not self.twin.episode:
            self.reset()
        if self.done:
            return self._limited(np.append(self._q, self._gripper))
        seg = self.segments[self._seg]
        self._t += 1
        alpha = min(1.0, self._t / seg.steps)
        pos = self._seg_start + alpha * (seg.pos - self._seg_start)
        action = self._solve(pos, seg.gripper)
        if self._t >= seg.steps:
            self._seg += 1
            self._t = 0
            self._seg_start = seg.pos.copy()
        return self._limited(action)

    def _limited(self, target: np.ndarray) -> np.ndarray:
        """``target`` approached at most ``VELOCITY_MARGIN`` of each joint's speed limit per period."""
        step = VELOCITY_MARGIN * self.spec.max_velocity_array * self.twin.control_period
        self._command = self._command + np.clip(target - self._command, -step, step)
        return self._command.copy()

    @property
    def duration_s(self) -> float:
        """How long the plan takes when played on the wall clock (``action_at``)."""
        return sum(seg.steps for seg in self.segments) * self.twin.control_period

    def action_at(self, elapsed_s: float) -> np.ndarray:
        """Time-based: the targets ``elapsed_s`` seconds into the plan, for a teleop that runs on
        the wall clock at its own rate (the real-time twin). Calls may come at any rate; the
        path is the step-based one, sampled continuously (a control period of the plan is
        ``twin.control_period`` seconds). ``done`` and ``phase`` follow the time."""
        if self._plan_for is not self.twin.episode:
            self.reset()
        steps = max(0.0, elapsed_s / self.twin.control_period)
        start = self._origin
        for index, seg in enumerate(self.segments):
            if steps < seg.steps:
                self._seg, self._t, self._seg_start = index, int(steps), start.copy()
                return self._solve(start + (steps / seg.steps) * (seg.pos - start), seg.gripper)
            steps -= seg.steps
            start = seg.pos
        self._seg, self._t = len(self.segments), 0
        last = self.segments[-1]
        return self._solve(last.pos, last.gripper)

    def act(self, state=None) -> np.ndarray:
        """Joint targets (spec order, gripper last) for the next control period."""
        return self.next_action()
