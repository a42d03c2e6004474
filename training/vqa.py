"""Embodied VQA for co-training: questions about the twin scene with exact answers.

The second paper (GrinningFace) finds co-training on vision-language data preserves the
VLM's priors; these samples ask what a policy must perceive — which emoji is where,
where the cube is — rendered by the MuJoCo twin so the answers are ground truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from training.config import VQA_QUESTION_SETS as QUESTION_SETS

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def scene_questions(twin, camera: str, rng: np.random.Generator | None = None,
                    questions: str = "all") -> list[tuple[str, str]]:
    """(question, answer) pairs for the twin's current scene, seen from `camera`.

    `questions` picks the kind: "scene" asks what is on the table (which emoji is where,
    where the cube is, how many cards); "grounding" gives each card an instruction-grounding
    pair, a robot instruction naming it ("put the cube on the frog") answered with where that
    card lies ("left"); "all" is both, 7 pairs per two-card scene.

    Why grounding: it asks the backbone to resolve the instruction's target in exactly the
    prompt the action queries read, on far more scenes than the robot data has. Measured on
    the demo (docs/demo.md): a staged-LoRA policy whose backbone still answered "where is the
    X?" 78-90 % right took the same card for every instruction. With grounding pairs the plain
    head used both cards but executed less the more pairs it saw. With the goal-predicting
    head (`model.goal_loss_weight`) and grounding pairs only, the demo's policy took the named
    card 95 % of the time (100 of 105 placements, train emojis).
    """
    from sim.emoji import TEMPLATES, get_emoji
    from training.prior.synth import position_word

    if questions not in QUESTION_SETS:
        raise ValueError(f"questions={questions!r}; allowed: {', '.join(QUESTION_SETS)}")
    rng = rng or np.random.default_rng(0)
    info = twin.info()
    names = [get_emoji(c).name if c in _catalogue_ids() else str(c).replace("_", " ") for c in info["cards"]]
    xs = [twin.image_x(camera, [x, y, 0.0]) for x, y in info["card_xy"]]
    order = np.argsort(xs)
    out: list[tuple[str, str]] = []
    if questions in ("all", "scene"):
        cube_x = twin.image_x(camera, [*info["cube_xy"], 0.0])
        where = "left" if cube_x < -0.15 else "right" if cube_x > 0.15 else "middle"
        nearest = int(np.argmin([np.hypot(x - info["cube_xy"][0], y - info["cube_xy"][1]) for x, y in info["card_xy"]]))
        out += [
            ("which emoji is at the left?", names[order[0]]),
            ("which emoji is at the right?", names[order[-1]]),
            ("where is the cube?", where),
            ("which emoji is nearest to the cube?", names[nearest]),
            ("how many cards are on the table?", NUMBER_WORDS[len(names)] if len(names) < 10 else str(len(names))),
        ]
    if questions in ("all", "grounding"):
        out += [(str(TEMPLATES[int(rng.integers(len(TEMPLATES)))]).format(name=names[j]), position_word(rank, len(names)))
                for rank, j in enumerate(order)]
    return out


def _catalogue_ids():
    from sim.emoji import catalogue

    return catalogue()


def generate_twin_vqa(num_samples: int, image_size: int = 64, robot: str = "widowx250", seed: int = 0,
                      camera: str = "third_person", split: str = "train", n_cards: int | None = None,
                      layout_seed: int | None = None, questions: str = "all") -> list[dict]:
    """Render `num_samples` embodied VQA samples: {"image": uint8 (3,H,W), "question", "answer"}.

    `split` picks the emojis on the cards: co-training keeps to train emojis, so the
    validation ones reach the policy only through the prior. `n_cards` / `layout_seed`
    match the scenes to the robot data (None: the twin's defaults, random layouts).
    `questions` is one of `QUESTION_SETS` (see `scene_questions`).
    """
    if questions not in QUESTION_SETS:
        raise ValueError(f"questions={questions!r}; allowed: {', '.join(QUESTION_SETS)}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from sim.config import TwinConfig
    from sim.twin import Twin

    from tqdm.auto import tqdm

    out: list[dict] = []
    extra = {k: v for k, v in (("n_cards", n_cards), ("layout_seed", layout_seed)) if v is not None}
    twin = Twin(TwinConfig(robot=robot, split=split, cameras=(camera,), image_size=(image_size, image_size), **extra))
    rng = np.random.default_rng(seed)
    bar = tqdm(total=num_samples, desc="embodied VQA from the twin", unit="qa", disable=num_samples < 200)
    try:
        scene = 0
        while len(out) < num_samples:
            twin.reset(seed * 100_003 + scene)
            image = torch.from_numpy(np.ascontiguousarray(twin.render(camera))).permute(2, 0, 1).contiguous()
            for question, answer in scene_questions(twin, camera, rng, questions):
                if len(out) < num_samples:
                    out.append({"image": image, "question": question, "answer": answer})
                    bar.update(1)
            scene += 1
    finally:
        bar.close()
        twin.close()
    return out


def load_jsonl_vqa(path: str | Path) -> list[dict]:
    """Your own VQA data: one {"image": "file.png", "question": ..., "answer": ...} per line."""
    from PIL import Image

    root = Path(path).parent
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        for key in ("image", "question", "answer"):
            if key not in row:
                raise ValueError(f"{path}:{n} lacks {key!r}")
        img = np.asarray(Image.open(root / row["image"]).convert("RGB"))
        out.append({"image": torch.from_numpy(img).permute(2, 0, 1).contiguous(),
                    "question": row["question"], "answer": row["answer"]})
    return out


class VQADataset(Dataset):
    def __init__(self, samples: list[dict]):
        if not samples:
            raise ValueError("VQA co-training needs at least one sample")
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]
