"""Training checkpoints: trainable weights (safetensors), optimizer/scheduler, RNG and data position.

Only trainable tensors are stored: frozen weights are rebuilt from the backbone and the
strategy, which keeps LoRA checkpoints small. Optimizer state is a torch file loaded with
`weights_only=True` (training-internal; bundles never contain it).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step_(\d+)$")


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, extra: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(path / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path / "optim.pt")
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
           "numpy_pos": int(np.random.get_state()[2]), "python": random.getstate()[1]}
    torch.save(rng, path / "rng.pt")
    (path / "state.json").write_text(json.dumps({"step": step, **extra}, indent=2))
    return path


def load_trainable(path: Path, model) -> None:
    """Copy the saved trainable tensors into `model`; the names must match exactly."""
    saved = load_file(str(Path(path) / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    unknown = [n for n in saved if n not in params]
    if missing or unknown:
        raise ValueError(f"checkpoint {path} does not fit this model/strategy: missing {missing[:5]}, "
                         f"unexpected {unknown[:5]}")
    with torch.no_grad():
        for n, t in saved.items():
            params[n].copy_(t.to(params[n].dtype))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    load_trainable(path, model)
    state = torch.load(path / "optim.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(("MT19937", np.array(rng["numpy"], dtype=np.uint32), rng["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(rng["python"]), None))
    return json.loads((path / "state.json").read_text())


def latest_checkpoint(directory: Path) -> Path | None:
    ckpts = [(int(m.group(1)), p) for p in Path(directory).glob("step_*") if (m := STEP_DIR.match(p.name))
             and (p / "state.json").is_file()]
    return max(ckpts)[1] if ckpts else None
