"""What the demo runs: the settings (full and ``--quick``) and the phase commands they expand to.

The reduced task (small images, two cards, a tiny VLM) is what lets learning happen on
two CPU cores in minutes; the report states every setting, and the random-card baseline
(1 / cards) is reported beside Rec. SR so the reduction cannot flatter the result.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from vla_robot.demo.runner import Phase
from vla_robot.models.grounding import GROUNDING_MODES
from vla_robot.policy.config import MERGE_MODES


@dataclass
class DemoSettings:
    robot: str = "widowx250"
    n_cards: int = 2
    image_size: int = 64
    layout_seed: int = 2  # cards and cube at the same places every episode; -1: random layouts
    camera: str = "third_person"
    # 500 episodes and 5,000 stage-2 steps: on one store, 2 seeds, the same quality as 600 and 6,000
    # (train Exe 93.5-94.5 %, val Rec 87-90 %) and ~2.5 min less on a slow VM hour (docs/demo.md, stop 23)
    grinning_face_episodes: int = 500
    reach_episodes: int = 30
    push_episodes: int = 30
    prior_steps: int = 1500
    prior_vision_warmup: int = 400
    prior_twin_focus: int = 3000
    prior_hidden: int = 64
    stage1_steps: int = 150
    stage2_steps: int = 5000
    batch_size: int = 16
    horizon: int = 12  # chunk length at 10 Hz; 8 -> 12 took train Exe 78.5 -> 91 %, val Rec 74 -> 78 % (docs/demo.md, stop 20)
    lora_rank: int = 16
    lr_head: float = 1e-3
    lr_backbone: float = 1e-3
    goal_loss_weight: float = 1.0  # the head predicts where the episode ends and acts on it (models/head.py); 0: off
    # the prompt is the prior's own question, "where is the X?", for the instruction's target (models/grounding.py):
    # 3 seeds on one store: val Rec 78-81 -> 87-93 %, train Exe 70-86 -> 93-96 % (docs/demo.md, stop 22)
    grounding_question: str = "only"
    vqa_ratio: float = 0.25  # embodied-VQA co-training batches (train emojis, the demo's layout); 0: off
    vqa_samples: int = 2400
    vqa_questions: str = "grounding"  # twin VQA kind: all | scene | grounding (instruction → card side); training/vqa.py
    eval_merge: str = "ensemble"  # how the runtime merges overlapping chunks in the eval
    eval_request_threshold: float = 0.0  # 0: play each chunk to its end before the next (see eval_argv)
    eval_episodes: int = 200
    eval_videos: int = 4
    max_steps: int = 120
    collect_speed: float = 20.0
    seed: int = 0
    expected_minutes: float = 14.0

    def __post_init__(self) -> None:
        positive = ("n_cards", "image_size", "grinning_face_episodes", "stage2_steps", "batch_size", "horizon",
                    "eval_episodes", "max_steps", "prior_hidden")
        bad = [k for k in positive if getattr(self, k) <= 0]
        bad += [k for k in ("reach_episodes", "push_episodes", "prior_steps", "prior_vision_warmup", "prior_twin_focus",
                            "stage1_steps", "eval_videos")
                if getattr(self, k) < 0]
        if bad:
            raise ValueError(f"demo settings {bad} must be positive (>= 0 for episode/step counts that may be skipped)")
        if self.image_size % 4:
            raise ValueError(f"image_size={self.image_size} must be a multiple of 4 (the tiny VLM uses 4x4 patches)")
        if self.goal_loss_weight < 0:
            raise ValueError(f"goal_loss_weight={self.goal_loss_weight} must be >= 0 (0 turns it off)")
        if not 0 <= self.vqa_ratio < 1:
            raise ValueError(f"vqa_ratio={self.vqa_ratio} must be in [0, 1)")
        if not 0.0 <= self.eval_request_threshold <= 1.0:
            raise ValueError(f"eval_request_threshold={self.eval_request_threshold} must be in [0, 1]")
        if self.grounding_question not in GROUNDING_MODES:
            raise ValueError(f"grounding_question={self.grounding_question!r}; allowed: {', '.join(GROUNDING_MODES)}")
        if self.eval_merge not in MERGE_MODES:
            raise ValueError(f"eval_merge={self.eval_merge!r}; allowed: {', '.join(MERGE_MODES)}")
        if self.n_cards < 2:
            raise ValueError("n_cards must be >= 2: with one card there is nothing to recognise")

    def as_dict(self) -> dict:
        return asdict(self)


FULL = DemoSettings()
QUICK = DemoSettings(
    image_size=32, grinning_face_episodes=4, reach_episodes=2, push_episodes=2, prior_steps=20, prior_vision_warmup=10,
    prior_twin_focus=10, prior_hidden=32,
    stage1_steps=4, stage2_steps=8, batch_size=4, horizon=4, lora_rank=4, eval_episodes=2, eval_videos=2,
    max_steps=40, collect_speed=4.0, vqa_samples=14, expected_minutes=3.0,
)


def _layout(s: DemoSettings) -> list[str]:
    return [] if s.layout_seed < 0 else ["--layout-seed", str(s.layout_seed)]


def twin_vqa_overrides(s: DemoSettings, ratio: float, questions: str | None = None) -> list[str]:
    """`vla-train` overrides for co-training on twin VQA that matches the demo's robot data
    (robot, card count, layout; train emojis, the generator's default split).
    `questions` defaults to the demo's `vqa_questions`."""
    return [f"vqa.ratio={ratio}", "vqa.source=twin", f"vqa.num_samples={s.vqa_samples}", f"vqa.robot={s.robot}",
            f"vqa.n_cards={s.n_cards}", f"vqa.layout_seed={s.layout_seed}", f"vqa.questions={questions or s.vqa_questions}"]


def train_argv(s: DemoSettings, store: Path, backbone: Path, strategy: list[str], seed: int, out_dir: Path,
               extra: list[str] | None = None) -> list[str]:
    """The `vla-train` command of the demo and of every study arm: the demo's model, head and
    optimiser settings, so that only the data, backbone, update strategy and seed differ."""
    return [_exe("vla-train"), f"data.stores=[{store}]", f"data.cameras=[{s.camera}]",
            f"data.batch_size={s.batch_size}", "model.family=paligemma", f"model.backbone={backbone}",
            f"model.image_size={s.image_size}", f"model.horizon={s.horizon}",
            f"model.goal_loss_weight={s.goal_loss_weight}", f"model.grounding_question={s.grounding_question}",
            *strategy,
            f"optim.lr_head={s.lr_head}", f"optim.lr_backbone={s.lr_backbone}",
            f"steps={s.stage2_steps}", f"seed={seed}", *(extra or []), f"out_dir={out_dir}"]


def train_check(argv: list[str]) -> list[str]:
    """The check of a `vla-train` phase: the same command with ``--print-config``, which
    validates every setting without reading data (0.1 s)."""
    return [*argv, "--print-config"]


def eval_argv(s: DemoSettings, bundle: Path, split: str, out: Path) -> list[str]:
    """The closed-loop `vla-robot eval` command of the demo and of every study arm.

    It plays each chunk (`horizon` steps) to its end before asking for the next one (ACT-style action
    chunking; `--request-threshold 0`). Measured on one bundle, 100 train-emoji episodes:
    re-planning when half the chunk is left executed 14, re-planning every step executed 0,
    playing whole chunks executed 61 (48 on the named card). Mid-chunk observations (the
    gripper closing, the cube just lifted) look alike, and re-planning from them mixed the
    phases.
    """
    robot = "sim" if s.robot == "widowx250" else f"sim:{s.robot}"
    return [_exe("vla-robot"), "eval", "--policy", str(bundle), "--robot", robot, "--split", split,
            "--episodes", str(s.eval_episodes), "--cards", str(s.n_cards), *_layout(s),
            "--image-size", str(s.image_size), str(s.image_size), "--max-steps", str(s.max_steps),
            "--videos", str(s.eval_videos), "--merge", s.eval_merge, "--request-threshold", str(s.eval_request_threshold),
            "--seed", str(100_000 + s.seed), "--out", str(out), "--quiet"]


def _exe(name: str) -> str:
    """A console script of this environment (beside the running interpreter), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


@dataclass
class Paths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def store(self, task: str) -> Path:
        return self.data / f"{task}_train.zarr"

    @property
    def prior(self) -> Path:
        return self.root / "prior"

    @property
    def train(self) -> Path:
        return self.root / "train" / "staged"

    @property
    def bundle(self) -> Path:
        return self.train / "bundle"

    def eval(self, split: str) -> Path:
        return self.root / "eval" / split


def build_phases(s: DemoSettings, out: Path, bundle_override: Path | None = None) -> list[Phase]:
    p = Paths(out)
    py = sys.executable
    phases: list[Phase] = []
    tasks = [("grinning_face", s.grinning_face_episodes), ("reach", s.reach_episodes), ("push", s.push_episodes)]
    phases.append(
        Phase(
            name="prior",
            argv=[py, "-m", "training.prior", "--out", str(p.prior), "--image-size", str(s.image_size),
                  "--hidden-size", str(s.prior_hidden), "--steps", str(s.prior_steps),
                  "--vision-warmup-steps", str(s.prior_vision_warmup), "--twin-focus-steps", str(s.prior_twin_focus),
                  "--seed", str(s.seed), "--threads", "1",
                  "--twin-cards", str(s.n_cards), "--twin-layout-seed", str(s.layout_seed),
                  *(["--twin-scenes", "20", "--probe-per-emoji", "1"] if s.prior_steps < 100 else [])],
            description="VLM prior: tiny PaliGemma pretrained on synthetic emoji VQA over all emojis (train + val); "
            "runs on one core beside the collection, which is pinned to the other",
            weight=0.3 + s.prior_vision_warmup / 2400 + s.prior_steps / 480 + s.prior_twin_focus / 1200,
            outputs=[str(p.prior)],
            alongside=True,
        )
    )
    # Collections run one at a time: each composes the twin, arm, camera and recorder nodes on the
    # same ROS domain and topic names, so two at once hear each other. Tried at stop 21 (reach on
    # the prior's core beside the GrinningFace collection): reach's recorder got no aligned frame
    # in its first episode and the phase failed.
    for task, n in tasks:
        if n <= 0:
            continue
        phases.append(
            Phase(
                name=f"collect_{task}",
                argv=[_exe("vla-robot"), "collect", "--robot", "sim", "--arm", s.robot, "--task", task, "--split", "train",
                      "--n-cards", str(s.n_cards), *_layout(s), "--episodes", str(n), "--size", f"{s.image_size}x{s.image_size}",
                      "--cameras", s.camera, "--speed", str(s.collect_speed), "--max-steps", str(s.max_steps),
                      "--seed", str(s.seed + {"grinning_face": 0, "reach": 10_000, "push": 20_000}[task]),
                      "--out", str(p.store(task))],
                description=f"record {n} scripted-expert {task} episodes "
                f"({'train emojis only' if task == 'grinning_face' else 'no emojis'}) through the ROS 2 collection nodes",
                weight=0.3 + 0.016 * n,  # weights are expected minutes on 2 idle cores (measured)
                outputs=[str(p.store(task))],
            )
        )
    phases.append(
        Phase(
            name="contact_sheet",
            argv=[_exe("vla-data"), "view", str(p.store("grinning_face")), "--out", str(p.data / "view_grinning_face"),
                  "--max-episodes", "8", "--format", "gif"],
            description="contact sheet and GIFs of the collected GrinningFace episodes",
            weight=0.1,
            outputs=[str(p.data / "view_grinning_face")],
        )
    )
    stage1 = [f"{p.store(t)}" for t, n in tasks[1:] if n > 0]
    strategy = ["strategy.name=staged", f"strategy.stage1.steps={s.stage1_steps}",
                f"strategy.stage1.stores=[{','.join(stage1)}]", f"strategy.stage1.lora.rank={s.lora_rank}",
                f"strategy.lora.rank={s.lora_rank}"] if stage1 and s.stage1_steps > 0 else \
        ["strategy.name=lora", f"strategy.lora.rank={s.lora_rank}"]
    vqa = twin_vqa_overrides(s, s.vqa_ratio) if s.vqa_ratio > 0 else []
    train = train_argv(s, p.store("grinning_face"), p.prior, strategy, s.seed, p.train, extra=vqa)
    phases.append(
        Phase(
            name="train",
            argv=train,
            check=train_check(train),
            description="staged LoRA: stage 1 on reach+push stores, merge, stage 2 on train-emoji placement"
            + (f"; {s.vqa_ratio:.0%} of batches embodied VQA from the twin (train emojis)" if vqa else "")
            + {"only": "; the prompt asks the prior's question, \"where is the X?\"",
               "append": "; the prompt adds the prior's question, \"where is the X?\""}.get(s.grounding_question, ""),
            weight=0.3 + (s.stage1_steps + s.stage2_steps) / 2400,
            outputs=[str(p.train)],
            needs=("prior",),
        )
    )
    bundle = bundle_override or p.bundle
    for split in ("train", "val"):
        phases.append(
            Phase(
                name=f"eval_{split}",
                argv=eval_argv(s, bundle, split, p.eval(split)),
                description=f"closed-loop evaluation on {split} emojis ({s.eval_episodes} episodes)",
                weight=0.1 + s.eval_episodes / 160,
                outputs=[str(p.eval(split))],
                # the two evals (45 s each, in-process twins, no DDS) run at once, one per core
                alongside=split == "train",
                cpu=0 if split == "train" else -1,
            )
        )
    phases.append(
        Phase(
            name="report",
            argv=[py, "-m", "vla_robot.demo.report", str(out)],
            description="report/index.html: metrics, curves, contact sheet, rollouts, commands",
            weight=0.3,
            outputs=[str(out / "report")],
            needs=("eval_train",),
        )
    )
    return phases
