"""AdamW with separate head and backbone learning rates, and linear warmup + cosine decay."""

from __future__ import annotations

import math

import torch

from training.config import OptimConfig
from vla_robot.models.vla import VLAModel

HEAD_PREFIXES = ("action_queries", "head.")


def param_groups(model: VLAModel, optim: OptimConfig) -> list[dict]:
    """Trainable parameters split into the head (queries + MLP + proprio + goal) and the backbone/LoRA group."""
    head, backbone = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if name.startswith(HEAD_PREFIXES) else backbone).append(p)
    groups = [{"params": head, "lr": optim.lr_head, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": optim.lr_backbone, "name": "backbone"})
    return groups


def build_optimizer(model: VLAModel, optim: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, optim), betas=tuple(optim.betas), weight_decay=optim.weight_decay)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
