"""Pretrain the tiny VLM on synthetic emoji VQA with the language-model loss.

Three phases, each there because a measured run failed without it:

1. vision warm-up: the tower alone learns to name emojis, and each of its patches learns
   its place in the grid (``vision_position_weight``); without the place, the LM had no way
   to address "the card on the left" (a linear probe read a patch's column 42 % of the time,
   chance 25 %; "which emoji is on the left?" stayed at 50 %, also after 1,000 twin-only steps);
2. the mix: identify / where / caption over the whole catalogue, plus twin scenes;
3. twin focus (``twin_focus_steps``): mostly "which emoji is on the left?" and "where is the
   X?" on twin renders. In the mix the model settled on one constant answer to both; alone
   it learns "which" in ~400 steps and then "where", which needs the name matched to a card.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from training.prior.synth import KINDS, SyntheticVL, all_emoji_ids
from training.prior.vision_warmup import EmojiClassifierAux


@dataclass
class PriorConfig:
    """Everything that defines a prior run; saved beside the weights as ``prior_config.json``."""

    out: str = "out/prior"
    family: str = "paligemma"
    image_size: int = 64
    hidden_size: int = 64
    num_layers: int = 2
    patch_size: int = 0  # pixels per vision patch; 0: a quarter of the image side (16 image tokens)
    steps: int = 1500
    vision_warmup_steps: int = 400  # vision tower alone on emoji classification, before the LM steps
    vision_aux_weight: float = 0.5  # that classification loss kept beside the LM loss (0: off)
    vision_twin_halves: bool = True  # the classifier also names the left/right card of twin scenes
    vision_position_weight: float = 1.0  # each vision patch also predicts its grid position (0: off)
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    max_cards: int = 3
    weight_identify: float = 0.5
    weight_where: float = 0.35
    weight_caption: float = 0.15
    twin_scenes: int = 300
    twin_weight: float = 0.4
    twin_cards: int = 2
    twin_layout_seed: int = -1
    twin_focus_steps: int = 3000  # after `steps`: mostly twin questions ("which is on the left?", "where is X?")
    twin_focus_weight: float = 0.85  # share of twin questions then; the rest is "which emoji is this?"
    seed: int = 0
    probe_every: int = 0
    probe_per_emoji: int = 2
    threads: int = 0

    def __post_init__(self) -> None:
        checks = {
            "image_size": self.image_size >= 16 and self.image_size % 4 == 0,
            "hidden_size": self.hidden_size >= 8 and self.hidden_size % 2 == 0,
            "num_layers": self.num_layers >= 1,
            "patch_size": self.patch_size == 0 or (self.patch_size >= 2 and self.image_size % self.patch_size == 0),
            "steps": self.steps >= 0,
            "vision_warmup_steps": self.vision_warmup_steps >= 0,
            "vision_aux_weight": self.vision_aux_weight >= 0,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "warmup": self.warmup >= 0,
            "probe_every": self.probe_every >= 0,
            "probe_per_emoji": self.probe_per_emoji >= 1,
            "twin_focus_steps": self.twin_focus_steps >= 0,
            "twin_focus_weight": 0 <= self.twin_focus_weight <= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            raise ValueError(
                f"invalid prior config: {values} (image_size: multiple of 4, >=16; hidden_size: even, >=8; patch_size: 0 or divides image_size; "
                "num_layers>=1; steps>=0; batch_size>=1; lr>0; warmup>=0; probe_every>=0; probe_per_emoji>=1)"
            )
        if min(self.weight_identify, self.weight_where, self.weight_caption) < 0:
            raise ValueError("sample-kind weights must be >= 0")
        if not 0 <= self.twin_weight <= 1 or self.twin_scenes < 0 or self.twin_cards < 2:
            raise ValueError(
                f"twin_weight={self.twin_weight} must be in [0, 1], twin_scenes={self.twin_scenes} >= 0 "
                f"(per emoji split; 0 disables twin scenes), twin_cards={self.twin_cards} >= 2"
            )

    @property
    def kind_weights(self) -> dict[str, float]:
        return dict(zip(KINDS, (self.weight_identify, self.weight_where, self.weight_caption)))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _lr_at(step: int, cfg: PriorConfig) -> float:
    """Warm-up and cosine over `steps`; the focus steps then hold half the peak and decay over their last quarter
    (the binding is learned late: it needs the rate held up longer than a cosine does)."""
    if step >= cfg.steps:
        progress = (step - cfg.steps) / max(cfg.twin_focus_steps, 1)
        tail = max(0.0, (progress - 0.75) / 0.25)
        return 0.5 * cfg.lr * 0.5 * (1 + math.cos(math.pi * min(tail, 1.0)))
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _warm_up_vision(aux: EmojiClassifierAux, opt, cfg: PriorConfig, log, start: float, progress: bool) -> None:
    """Train only the vision tower (and the throw-away classifier); logged with negative steps."""
    from tqdm import tqdm

    bar = tqdm(range(cfg.vision_warmup_steps), desc="prior: vision warm-up", disable=not progress, dynamic_ncols=True)
    for step in bar:
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, accuracy = aux.loss_and_accuracy()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.write(json.dumps({"step": step - cfg.vision_warmup_steps, "vision_loss": float(loss.detach()),
                              "vision_accuracy": accuracy, "vision_twin_accuracy": aux.twin_accuracy,
                              "vision_position_accuracy": aux.position_accuracy, "lr": lr, "elapsed_s": round(time.time() - start, 2)}) + "\n")
        bar.set_postfix(acc=f"{accuracy:.2f}")
    opt.state.clear()  # the LM phase starts its own moments (the tower's are warm-up-sized)


def pretrain(cfg: PriorConfig, progress: bool = True) -> dict:
    """Build, pretrain and save the prior; return the run summary (also in ``prior_summary.json``)."""
    from tqdm import tqdm

    from training.prior.backbone import build_backbone
    from training.prior.probe import run_probe

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    model, processor = build_backbone(out, cfg.family, cfg.image_size, cfg.hidden_size, cfg.num_layers, cfg.seed,
                                      patch_size=cfg.patch_size or None)
    stream = SyntheticVL(all_emoji_ids(), cfg.image_size, seed=cfg.seed, weights=cfg.kind_weights, max_cards=cfg.max_cards)
    twin_stream, scenes = None, []
    if cfg.twin_scenes and cfg.twin_weight > 0:
        from training.prior.twin_scenes import TwinSceneVL, render_twin_scenes

        layout = None if cfg.twin_layout_seed < 0 else cfg.twin_layout_seed
        scenes = render_twin_scenes(cfg.twin_scenes, cfg.image_size, n_cards=cfg.twin_cards, seed=cfg.seed, layout_seed=layout)
        twin_stream = TwinSceneVL(scenes, seed=cfg.seed)
    focus_steps = cfg.twin_focus_steps if twin_stream is not None and cfg.steps else 0
    naming = SyntheticVL(all_emoji_ids(), cfg.image_size, seed=cfg.seed + 3, weights={"identify": 1.0})
    mix = random.Random(cfg.seed + 1)
    aux = EmojiClassifierAux(model, processor, all_emoji_ids(), cfg.image_size, cfg.seed, batch_size=cfg.batch_size,
                             twin_scenes=scenes if cfg.vision_twin_halves else None,
                             position_weight=cfg.vision_position_weight)
    opt = torch.optim.AdamW(list(model.parameters()) + aux.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log_path = out / "prior_log.jsonl"
    log = log_path.open("w")
    probes = []
    model.train()
    if cfg.steps and cfg.vision_warmup_steps:
        _warm_up_vision(aux, opt, cfg, log, start, progress)
    bar = tqdm(range(cfg.steps + focus_steps), desc="prior", disable=not progress, dynamic_ncols=True)
    for step in bar:
        focus = step >= cfg.steps
        if focus:
            samples = [twin_stream.sample() if mix.random() < cfg.twin_focus_weight else naming.sample()
                       for _ in range(cfg.batch_size)]
        else:
            samples = [
                twin_stream.sample() if twin_stream is not None and mix.random() < cfg.twin_weight else stream.sample()
                for _ in range(cfg.batch_size)
            ]
        batch = processor(
            images=[s.image for s in samples],
            text=[processor.image_token + s.question for s in samples],
            suffix=[s.answer for s in samples],
            return_tensors="pt",
            padding="longest",
        )
        lr = _lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(**batch).loss
        total = loss
        aux_accuracy = None
        if cfg.vision_aux_weight > 0 and not focus:  # the tower already names cards; focus steps train the binding
            aux_loss, aux_accuracy = aux.loss_and_accuracy()
            total = loss + cfg.vision_aux_weight * aux_loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        record = {"step": step + 1, "phase": "twin_focus" if focus else "mix", "loss": float(loss.detach()), "lr": lr,
                  "elapsed_s": round(time.time() - start, 2)}
        if aux_accuracy is not None:
            record["vision_accuracy"] = aux_accuracy
            if aux.twin_accuracy is not None:
                record["vision_twin_accuracy"] = aux.twin_accuracy
            if aux.position_accuracy is not None:
                record["vision_position_accuracy"] = aux.position_accuracy
        if cfg.probe_every and (step + 1) % cfg.probe_every == 0 and step + 1 < cfg.steps + focus_steps:
            probe = run_probe(model, processor, cfg.image_size, n_per_emoji=1, twin_scenes=10 if cfg.twin_scenes else 0,
                              twin_layout_seed=None if cfg.twin_layout_seed < 0 else cfg.twin_layout_seed)
            record["probe"] = probe.as_dict()
            probes.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        bar.set_postfix(loss=f"{record['loss']:.3f}")
    log.close()
    train_s = time.time() - start
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    layout = None if cfg.twin_layout_seed < 0 else cfg.twin_layout_seed
    final = run_probe(model, processor, cfg.image_size, n_per_emoji=cfg.probe_per_emoji,
                      twin_scenes=20 if cfg.twin_scenes else 0, twin_layout_seed=layout)
    summary = {
        "config": asdict(cfg),
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.time() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "emojis": {"all": len(all_emoji_ids())},
        "probe": final.as_dict(),
        "probe_history": [{"step": r["step"], **r["probe"]} for r in probes],
    }
    (out / "prior_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "prior_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
