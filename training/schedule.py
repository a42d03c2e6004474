"""AdamW with separate head and backbone learning rates, no weight decay on norms, biases and
embeddings, and linear warmup + cosine decay.

Weight decay pulls every weight towards zero. For a LayerNorm/RMSNorm gain that means towards
"switch the feature off", for a bias towards an arbitrary offset, and for an embedding row (and
the action-query tokens) towards a vector no token ever had, so those are not decayed
(as in nanoGPT, OpenVLA and most LLM recipes): only matrices of Linear/conv layers are.
"""

from __future__ import annotations

import math

import torch

from training.config import OptimConfig
from vla_robot.models.vla import VLAModel

HEAD_PREFIXES = ("action_queries", "head.")


def no_decay_names(model: torch.nn.Module) -> set[str]:
    """Parameters AdamW must not decay: biases and other vectors, every weight of an embedding or
    a normalisation layer (found by module type, whatever the family names them), and the action
    queries (learned token embeddings)."""
    out = {"action_queries"}
    for mod_name, module in model.named_modules():
        is_embedding = isinstance(module, torch.nn.Embedding)
        is_norm = "norm" in type(module).__name__.lower()
        for p_name, p in module.named_parameters(recurse=False):
            if is_embedding or is_norm or p.ndim < 2:
                out.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return out


def param_groups(model: VLAModel, optim: OptimConfig) -> list[dict]:
    """Trainable parameters in (head | backbone) x (decay | no decay) groups; empty groups are left out.

    Group names: head, head_no_decay, backbone, backbone_no_decay (the log reads lr_head from
    the first head group and lr_backbone from the first backbone group)."""
    groups: dict[str, list] = {"head": [], "head_no_decay": [], "backbone": [], "backbone_no_decay": []}
    plain = no_decay_names(model)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if name.startswith(HEAD_PREFIXES) else "backbone"
        groups[f"{part}_no_decay" if name in plain else part].append(p)
    out = []
    for name, params in groups.items():
        if params:
            lr = optim.lr_head if name.startswith("head") else optim.lr_backbone
            out.append({"params": params, "lr": lr, "name": name,
                        "weight_decay": optim.weight_decay if not name.endswith("no_decay") else 0.0})
    return out


def build_optimizer(model: VLAModel, optim: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, optim), betas=tuple(optim.betas), weight_decay=optim.weight_decay)


def lr_factor(warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(warmup, total, min_ratio))


def apply_hyperparameters(optimizer: torch.optim.Optimizer, scheduler, optim: OptimConfig) -> None:
    """Impose the config's learning rates, betas and weight decay on a restored optimizer.

    `load_state_dict` restores the hyperparameters saved with the checkpoint, which would
    silently override a changed (and explicitly applied, `resume_apply`) config. The Adam moments
    and the scheduler's step are kept."""
    for i, group in enumerate(optimizer.param_groups):
        name = group.get("name", "backbone")
        base = optim.lr_head if name.startswith("head") else optim.lr_backbone
        scheduler.base_lrs[i] = base
        group["lr"] = base * scheduler.lr_lambdas[i](scheduler.last_epoch)
        group["betas"] = tuple(optim.betas)
        group["weight_decay"] = 0.0 if name.endswith("no_decay") else optim.weight_decay
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
