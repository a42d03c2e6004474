"""How much emoji knowledge a VLM holds: the probe the demo and the study share.

Two closed-set VQA tests, scored by the model's own likelihood of each candidate answer
(sum of log-probabilities of the answer tokens and end-of-sequence), so the probe needs
no generation heuristics and works on a backbone pulled out of a trained VLA:

* ``identify``: one card, "which emoji is this?", candidates = every catalogue name
  (chance = 1 / catalogue size);
* ``where``: two cards, "where is the X?", candidates = left / right (chance = 1/2).

On twin renders (``twin_scenes``) it also asks "which emoji is on the left/right?" and the
robot instruction itself, "put the cube on the X" → left / right: what a policy prompted with
the instruction reads. On the demo, a policy's validation Rec. SR followed the backbone's
answer to its own prompt within 2 points (docs/demo.md, stop 22).

Accuracy is reported separately for train and validation emojis: validation emojis are
never in robot data, so their score after VLA training is the prior that survived.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import torch

from sim import emoji as emoji_catalogue
from training.prior.synth import IDENTIFY_QUESTIONS, render_identify, render_where


@dataclass
class ProbeResult:
    identify_train: float
    identify_val: float
    where_train: float
    where_val: float
    identify_chance: float
    where_chance: float
    n_per_emoji: int
    twin_where_train: float | None = None
    twin_where_val: float | None = None
    twin_which_train: float | None = None
    twin_which_val: float | None = None
    twin_instruction_train: float | None = None
    twin_instruction_val: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def answer_logprobs(model, processor, images, question: str | list[str], answers: list[str], batch_size: int = 128):
    """Sum log p(answer + eos | image, question) for each (image, answer) pair."""
    questions = [question] * len(answers) if isinstance(question, str) else list(question)
    questions = [processor.image_token + q for q in questions]
    scores = []
    for start in range(0, len(answers), batch_size):
        sl = slice(start, start + batch_size)
        batch = processor(
            images=images[sl], text=questions[sl], suffix=answers[sl], return_tensors="pt", padding="longest"
        )
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        mask = target != -100
        logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores.append((logp * mask).sum(-1))
    return torch.cat(scores)


def _identify_accuracy(model, processor, ids, names, image_size, n_per_emoji, rng) -> float:
    correct = total = 0
    for eid in ids:
        for _ in range(n_per_emoji):
            sample = render_identify(eid, image_size, rng)
            scores = answer_logprobs(model, processor, [sample.image] * len(names), IDENTIFY_QUESTIONS[0], names)
            correct += int(names[int(scores.argmax())] == sample.answer)
            total += 1
    return correct / max(total, 1)


def _where_accuracy(model, processor, ids, all_ids, image_size, n_per_emoji, rng) -> float:
    correct = total = 0
    for eid in ids:
        for _ in range(n_per_emoji):
            other = rng.choice([i for i in all_ids if i != eid])
            target = rng.randrange(2)
            row = [other, other]
            row[target] = eid
            sample = render_where(row, target, image_size, rng)
            scores = answer_logprobs(model, processor, [sample.image] * 2, sample.question, ["left", "right"])
            correct += int(("left", "right")[int(scores.argmax())] == sample.answer)
            total += 1
    return correct / max(total, 1)


def _twin_accuracy(model, processor, scenes) -> dict[str, float]:
    """On twin renders (2 cards): "where is the X?" (left/right), the question the policy must
    answer, "which emoji is on the left/right?" (between the two names on the table), and the
    robot instruction "put the cube on the X" answered left/right."""
    from sim import emoji as cat

    kinds = ("where", "which", "instruction")
    correct = {(kind, s): 0 for kind in kinds for s in cat.SPLITS}
    total = dict.fromkeys(correct, 0)
    for scene in scenes:
        image, order = scene.image, scene.order[:2]
        split = cat.get_emoji(order[0]).split
        names = [cat.get_emoji(eid).name for eid in order]
        for k, (name, side) in enumerate(zip(names, ("left", "right"))):
            where = answer_logprobs(model, processor, [image] * 2, f"where is the {name}?", ["left", "right"])
            which = answer_logprobs(model, processor, [image] * 2, f"which emoji is on the {side}?", names)
            instruction = answer_logprobs(model, processor, [image] * 2, cat.instruction(name, 0), ["left", "right"])
            for kind, scores in (("where", where), ("which", which), ("instruction", instruction)):
                correct[kind, split] += int(int(scores.argmax()) == k)
                total[kind, split] += 1
    return {f"twin_{kind}_{s}": correct[kind, s] / max(total[kind, s], 1) for kind, s in correct}


def run_probe(
    model, processor, image_size: int, n_per_emoji: int = 2, seed: int = 1234,
    twin_scenes: int = 0, twin_layout_seed: int | None = None,
) -> ProbeResult:
    """Fixed-seed probe over the whole catalogue; deterministic for a given model.

    ``twin_scenes`` > 0 adds "where is the X?" and "which emoji is on the left/right?" on that
    many twin renders per split (2 cards,
    ``twin_layout_seed`` fixing the layout as in the demo, or random layouts when None).
    """
    was_training = model.training
    model.eval()
    rng = random.Random(seed)
    cat = emoji_catalogue.catalogue()
    names = [e.name for e in cat.values()]
    all_ids = list(cat)
    out = {}
    for split in emoji_catalogue.SPLITS:
        ids = emoji_catalogue.split_ids(split)
        out[f"identify_{split}"] = _identify_accuracy(model, processor, ids, names, image_size, n_per_emoji, rng)
        out[f"where_{split}"] = _where_accuracy(model, processor, ids, all_ids, image_size, n_per_emoji, rng)
    if twin_scenes:
        from training.prior.twin_scenes import render_twin_scenes

        scenes = render_twin_scenes(twin_scenes, image_size, n_cards=2, seed=seed, layout_seed=twin_layout_seed)
        out.update(_twin_accuracy(model, processor, scenes))
    model.train(was_training)
    return ProbeResult(**out, identify_chance=1 / len(names), where_chance=0.5, n_per_emoji=n_per_emoji)
