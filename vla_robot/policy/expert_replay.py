"""The expert-replay policy: a TEST/PLUMBING policy, not a learned one.

Its "model" is the twin's scripted expert. On ``reset`` it receives the episode context
(robot, twin config and seed) that evaluation publishes, rebuilds that episode in a
private twin, and records the expert's joint targets for every control step. ``infer``
then returns the chunk for the observation's step, exactly like a real policy returns
a chunk for an observation.

Why it exists: it is privileged (it knows the episode), so its success rate is the
expert's whenever the runtime in between is correct. Any dropped, repeated, reordered,
mis-scaled or mis-ordered joint command, or a wrong step index, shows up as lost
successes. That makes it the end-to-end check of the runtime, the ROS plumbing and the
evaluation harness, independent of whether any model has learned anything.

It also checks what it is given: every camera it declares must deliver a uint8 HxWx3
image and the state must have the arm's joint count, so camera/joint plumbing is
exercised too.

``infer_delay_s`` in the episode context makes each inference take that long (a slow model
on a loaded GPU), so the fault tests can slow inference tenfold from another process and
watch stale actions being skipped. ``"plan": "sweep"`` replays a smooth joint sweep around
home instead of the expert (waist +-0.5 rad, shoulder and elbow +-0.15 rad, a 4 s period, TCP
high above the table): motion that never touches anything, for as long as a fault test or a
benchmark runs. An open-loop expert replay that was held mid-episode resumes further along
its plan than the arm is, and pushes into the cube; a servo then overloads, which is a
finding of its own, not the one those tests are after.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vla_robot.policy.types import Observation

FORMAT = "vla-robot-expert-replay"


def write_expert_replay_bundle(
    out_dir: str | Path, robot: str = "widowx250", chunk_size: int = 10, cameras: tuple[str, ...] = ("third_person",)
) -> Path:
    """Create the bundle directory (a single JSON file: there are no weights)."""
    from vla_robot.robots.specs import get_robot_spec

    spec = get_robot_spec(robot)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.json").write_text(json.dumps({
        "format": FORMAT,
        "version": 1,
        "robot": robot,
        "chunk_size": chunk_size,
        "action_dim": spec.dof,
        "cameras": list(cameras),
        "action_space": {"type": "joint", "robot": robot},
        "note": "test/plumbing policy: replays the twin's scripted expert; it needs the episode context",
    }, indent=2))
    return out


def twin_kwargs(data: dict) -> dict:
    """TwinConfig kwargs back from JSON (lists -> tuples)."""
    out = dict(data)
    for key in ("cameras", "image_size", "emoji_ids"):
        if out.get(key) is not None:
            out[key] = tuple(out[key])
    if out.get("camera_sizes"):
        out["camera_sizes"] = {k: tuple(v) for k, v in out["camera_sizes"].items()}
    return out


def sweep_plan(spec, control_hz: float, seconds: float = 600.0, period_s: float = 4.0) -> np.ndarray:
    """Joint targets per control step: home plus a slow sinusoid on the first three joints."""
    t = np.arange(int(seconds * control_hz)) / control_hz
    phase = np.sin(2 * np.pi * t / period_s)
    plan = np.tile(np.asarray(spec.home, dtype=np.float64), (len(t), 1))
    plan[:, 0] += 0.5 * phase
    plan[:, 1] += 0.15 * phase
    plan[:, 2] -= 0.15 * phase
    return np.clip(plan, spec.lower_array, spec.upper_array)


class ExpertReplayPolicy:
    action_space = "joint"
    scene = None  # replays whatever episode the evaluation builds

    def __init__(self, robot: str = "widowx250", chunk_size: int = 10, cameras: tuple[str, ...] = ("third_person",)):
        from vla_robot.robots.specs import get_robot_spec

        self.spec = get_robot_spec(robot)
        self.robot = robot
        self.chunk_size = chunk_size
        self.action_dim = self.spec.dof
        self.camera_names = tuple(cameras)
        self.instruction = ""
        self._plan: np.ndarray | None = None
        self._episode_key = None
        self.frames_seen = 0
        self.control_hz = None
        self.infer_delay_s = 0.0

    @classmethod
    def load(cls, path: str | Path) -> "ExpertReplayPolicy":
        meta = json.loads((Path(path) / "bundle.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not an expert-replay bundle (format {meta.get('format')!r})")
        return cls(meta["robot"], int(meta["chunk_size"]), tuple(meta["cameras"]))

    def describe(self) -> dict:
        return {"kind": "expert_replay", "robot": self.robot, "horizon": self.chunk_size,
                "cameras": list(self.camera_names), "note": "test/plumbing policy (privileged expert replay)"}

    def reset(self, instruction: str, episode: dict | None = None) -> None:
        """Plan the episode named by ``episode`` = {"seed", "twin": TwinConfig kwargs}."""
        self.instruction = instruction
        if episode is None or "seed" not in episode or "twin" not in episode:
            raise ValueError("the expert-replay policy needs the episode context {'seed', 'twin'} from evaluation")
        self.infer_delay_s = float(episode.get("infer_delay_s", 0.0))
        key = json.dumps([episode["seed"], episode["twin"], episode.get("plan", "expert")], sort_keys=True)
        if key == self._episode_key and self._plan is not None:
            return
        if episode.get("plan") == "sweep":
            self._plan = sweep_plan(self.spec, float(episode["twin"].get("control_rate_hz", 10.0)))
            self._episode_key = key
            return
        from sim import ScriptedExpert, Twin, TwinConfig

        twin = Twin(TwinConfig(**twin_kwargs(episode["twin"])))  # never rendered: only the plan is needed
        try:
            twin.reset(int(episode["seed"]))
            if twin.episode.instruction != instruction:
                raise ValueError(f"episode seed {episode['seed']} has instruction {twin.episode.instruction!r}, "
                                 f"the runtime was given {instruction!r}")
            expert = ScriptedExpert(twin)
            steps = int(twin.config.max_steps) + self.chunk_size
            self._plan = np.stack([expert.act() for _ in range(steps)])
        finally:
            twin.close()
        self._episode_key = key

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        if self._plan is None:
            raise RuntimeError("expert-replay policy: reset() with the episode context first")
        for name in self.camera_names:
            img = obs.images.get(name)
            if img is None or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"camera {name!r} delivered no uint8 HxWx3 image")
            self.frames_seen += 1
        if np.asarray(obs.state).shape != (self.action_dim,):
            raise ValueError(f"state has shape {np.asarray(obs.state).shape}, expected ({self.action_dim},)")
        idx = np.clip(np.arange(obs.step, obs.step + self.chunk_size), 0, len(self._plan) - 1)
        chunk = self._plan[idx].copy()
        if self.infer_delay_s > 0:
            time.sleep(self.infer_delay_s)
        return chunk, {"total": time.perf_counter() - t0}
