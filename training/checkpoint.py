"""Training checkpoints: trainable weights, optimizer and scheduler, every process's RNG, the data position.

Layout of `checkpoints/step_N/` (written as `step_N.partial/` and renamed when complete, so a
crash mid-save never leaves a checkpoint that looks finished):

    state.json              step, phase, world size, stream positions, the resolved config, format
    trainable.safetensors   trainable tensors (replicated runs: single process, DDP)
    optim.pt                optimizer + scheduler state and the parameter names of each group
    sharded/                FSDP: a torch.distributed.checkpoint directory every process writes its
                            shards of the trainable tensors and the optimizer state into
    rng_rank{R}.pt          torch CPU (+ CUDA) / numpy / python RNG of process R

Only trainable tensors are stored: frozen weights are rebuilt from the backbone and the
strategy, which keeps LoRA checkpoints small. Torch files load with `weights_only=True`
(training-internal; bundles never contain them).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step_(\d+)$")
FORMAT = 2


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------ RNG
def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2]), "python": random.getstate()[1]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ weights
def load_trainable(path: Path, model, freeze_unused: bool = True) -> None:
    """Copy the saved trainable tensors into `model`; the names must match exactly.

    Parameters the saving run froze because no batch ever used them (`state.json`
    "frozen_unused") are frozen here too, so that both runs train the same set.
    """
    path = Path(path)
    if freeze_unused:
        freeze(model, read_state(path).get("frozen_unused", []))
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    unknown = [n for n in saved if n not in params]
    if missing or unknown:
        raise ValueError(f"checkpoint {path} does not fit this model/strategy: missing {missing[:5]}, "
                         f"unexpected {unknown[:5]}")
    with torch.no_grad():
        for n, t in saved.items():
            params[n].copy_(t.to(params[n].dtype))


def freeze(model, names) -> None:
    params = dict(model.named_parameters())
    for n in names:
        if n in params:
            params[n].requires_grad_(False)


def _group_names(model, optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names.get(id(p), "?") for p in g["params"]] for g in optimizer.param_groups]


# ------------------------------------------------------------------ save / load
def read_state(path: Path) -> dict:
    return json.loads((Path(path) / "state.json").read_text())


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, state: dict, acc,
                    sharded: bool = False, keep: int = 0) -> Path:
    """Write `directory/step_N` from every process (collective); returns its path.

    Replicated runs: the main process writes weights and optimizer, every process its RNG.
    Sharded (FSDP) runs: every process writes its shards through torch.distributed.checkpoint.
    """
    final = Path(directory) / f"step_{step:07d}"
    partial = final.with_name(final.name + ".partial")
    if acc.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    acc.wait_for_everyone()
    if sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        msd, osd = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(partial / "sharded"))
        if acc.is_main_process:
            torch.save({"scheduler": scheduler.state_dict()}, partial / "optim.pt")
    elif acc.is_main_process:
        save_file(trainable_state(model), str(partial / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "names": _group_names(model, optimizer)}, partial / "optim.pt")
    torch.save(rng_state(), partial / f"rng_rank{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        payload = {"format": FORMAT, "step": step, "world_size": acc.num_processes, "sharded": sharded, **state}
        (partial / "state.json").write_text(json.dumps(payload, indent=2, default=str))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        prune(directory, keep)
    acc.wait_for_everyone()
    return final


def load_checkpoint(path: Path, model, optimizer, scheduler, acc, sharded: bool = False) -> dict:
    """Restore weights, optimizer, scheduler and this process's RNG; returns state.json.

    RNG: each process restores its own file; when the world size grew, the new processes
    take process 0's (only dropout draws from it: data order and augmentation follow the
    stream position, not the RNG)."""
    path = Path(path)
    state = read_state(path)
    if bool(state.get("sharded", False)) != sharded:
        raise ValueError(f"checkpoint {path} is {'sharded (FSDP)' if state.get('sharded') else 'replicated (DDP)'}; "
                         f"this run is {'sharded' if sharded else 'replicated'}. Resume with the same "
                         "distributed.sharding, or export a bundle from it (vla-train --export-bundle)")
    if sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_state_dict,
                                                             set_state_dict)

        from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

        options = StateDictOptions(ignore_frozen_params=True)
        msd, osd = get_state_dict(model, optimizer, options=options)
        dcp.load({"model": msd}, checkpoint_id=str(path / "sharded"))
        # Adam state exists only for parameters that ever got a gradient (FSDP runs do not freeze
        # the never-used ones): the others keep the empty state the template was built with.
        dcp.load({"optim": osd}, checkpoint_id=str(path / "sharded"), planner=DefaultLoadPlanner(allow_partial_load=True))
        set_state_dict(model, optimizer, model_state_dict=msd, optim_state_dict=osd, options=options)
        scheduler.load_state_dict(torch.load(path / "optim.pt", weights_only=True)["scheduler"])
    else:
        load_trainable(path, model, freeze_unused=False)
        saved = torch.load(path / "optim.pt", weights_only=True)
        names = saved.get("names")
        if names is not None and names != _group_names(model, optimizer):
            raise ValueError(f"checkpoint {path}: the optimizer's parameter groups differ from this run's "
                             "(another strategy, or another set of frozen parameters)")
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    rng = [p for p in (path / f"rng_rank{acc.process_index}.pt", path / "rng_rank0.pt", path / "rng.pt") if p.exists()]
    if rng:
        set_rng_state(torch.load(rng[0], weights_only=True))
    return state


def checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in `directory`, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(directory).glob("step_*") if (m := STEP_DIR.match(p.name))
             and (p / "state.json").is_file()]
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    found = checkpoints(directory)
    return found[-1][1] if found else None


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints (0 keeps all) and any unfinished `.partial` ones."""
    removed = []
    for p in Path(directory).glob("step_*.partial"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    if keep > 0:
        for _, p in checkpoints(directory)[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
