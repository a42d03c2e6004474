"""Closed-loop evaluation in the twin, in one process: the same ``ControlLoop`` that deploys.

Each episode: reset the twin with a seed, give the policy the instruction (and the
episode context, used only by the expert-replay plumbing policy), run the control loop
until ``max_steps`` or until the cube has rested on a card for ``settle_steps``, then
judge with ``Twin.evaluate()``. The through-ROS variant (``vla_robot.ros.policy_eval``)
produces the same per-episode records, so both feed ``vla_robot.policy.report``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from vla_robot.policy.config import RuntimeConfig
from vla_robot.policy.loop import ControlLoop

SPLIT_CHOICES = ("train", "val", "both")


@dataclass
class EvalConfig:
    """What to evaluate on. Seeds are ``seed + i`` per split, disjoint from the demo seeds by default."""

    robot: str = "widowx250"
    split: str = "train"
    episodes: int = 10
    seed: int = 100_000
    max_steps: int = 120
    settle_steps: int = 10
    image_size: tuple[int, int] = (224, 224)
    n_cards: int = 4
    videos: int = 2
    video_camera: str = "third_person"
    twin_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLIT_CHOICES:
            raise ValueError(f"split={self.split!r} is not allowed; choose one of {', '.join(SPLIT_CHOICES)}")
        if self.episodes < 1:
            raise ValueError(f"episodes={self.episodes} must be >= 1")
        if self.max_steps < 1 or self.settle_steps < 1:
            raise ValueError("max_steps and settle_steps must be >= 1")
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "val") if self.split == "both" else (self.split,)

    def twin_config(self, split: str, cameras: tuple[str, ...], control_hz: float) -> dict:
        """TwinConfig kwargs (JSON-able: they also travel to the policy as episode context)."""
        cams = tuple(dict.fromkeys((*cameras, self.video_camera)))
        cfg = dict(robot=self.robot, split=split, n_cards=self.n_cards, cameras=list(cams),
                   image_size=list(self.image_size), control_rate_hz=control_hz, max_steps=self.max_steps)
        cfg.update(self.twin_overrides)
        return cfg


class Settled:
    """True once the episode's outcome has been 'executed' for ``n`` consecutive checks."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0

    def update(self, result: dict) -> bool:
        self.count = self.count + 1 if result.get("executed") else 0
        return self.count >= self.n


def run_episode(loop: ControlLoop, twin, seed: int, twin_cfg: dict, cfg: EvalConfig, record_video: bool) -> dict:
    info = twin.reset(seed)
    loop.robot.connect()
    before = loop.safety.report()
    loop.start_episode(info["instruction"], {"seed": seed, "twin": twin_cfg, "info": info})
    frames = [twin.render(cfg.video_camera)] if record_video else []
    settled = Settled(cfg.settle_steps)
    t0 = time.perf_counter()
    steps = 0
    for steps in range(1, cfg.max_steps + 1):
        loop.tick()
        if record_video:
            frames.append(twin.render(cfg.video_camera))
        if settled.update(twin.evaluate()):
            break
    result = twin.evaluate()
    after = loop.safety.report()
    result.update(
        seed=seed,
        steps=steps,
        wall_s=time.perf_counter() - t0,
        safety_events={k: after[k] - before[k] for k in after if after[k] - before[k]},
    )
    if record_video:
        result["_frames"] = frames
    return result


def evaluate_in_process(policy, cfg: EvalConfig, runtime: RuntimeConfig | None = None,
                        progress: bool = True, realtime: bool = False) -> tuple[list[dict], dict]:
    """Roll ``policy`` out in the twin; returns (episode records, runtime report).

    ``realtime=False`` (evaluation): lock-step, physics waits for the policy. ``realtime=True``
    (``vla-robot deploy --direct``): the loop is paced by the wall clock like on a robot.
    """
    from sim import Twin, TwinCamera, TwinConfig, TwinRobot
    from vla_robot.policy.expert_replay import twin_kwargs

    runtime = runtime or RuntimeConfig(asynchronous=False)
    records: list[dict] = []
    loop = None
    reports = []
    bar = tqdm(total=cfg.episodes * len(cfg.splits), desc="eval (in-process)", disable=not progress)
    try:
        for split in cfg.splits:
            twin_cfg = cfg.twin_config(split, policy.camera_names, runtime.control_hz)
            twin = Twin(TwinConfig(**twin_kwargs(twin_cfg)))
            try:
                robot = TwinRobot(twin)
                cameras = {name: TwinCamera(twin, name) for name in twin.camera_names}
                for cam in cameras.values():
                    cam.connect()
                loop = ControlLoop(robot, cameras, policy, dataclasses.replace(runtime), pace=realtime)
                for i in range(cfg.episodes):
                    seed = cfg.seed + i
                    rec = run_episode(loop, twin, seed, twin_cfg, cfg, record_video=i < cfg.videos)
                    rec.update(split=split, episode=i)
                    records.append(rec)
                    bar.update(1)
                    bar.set_postfix(split=split, success=sum(r["success"] for r in records))
                reports.append(loop.report())
                loop.close()
                loop = None
            finally:
                twin.close()
    finally:
        bar.close()
        if loop is not None:
            loop.close()
    return records, merge_reports(reports)


def merge_reports(reports: list[dict]) -> dict:
    """One runtime report for several loops (one per split): counters add, latency of the last."""
    if not reports:
        return {}
    out = dict(reports[-1])
    for key in ("safety", "loop"):
        out[key] = {k: int(sum(r[key].get(k, 0) for r in reports)) for k in reports[-1][key]}
    return out


def episode_stats(records: list[dict]) -> dict:
    steps = np.asarray([r["steps"] for r in records], dtype=float)
    return {"episode_length_mean": float(steps.mean()), "episode_length_max": int(steps.max())}
