"""A policy bundle from a run's checkpoints, replicated or sharded (FSDP), without the processes that wrote them.

    vla-train --export-bundle runs/x                 # → runs/x/bundle
    vla-train --export-bundle runs/x --out /tmp/b    # elsewhere

The model is rebuilt as the run built it (backbone, strategy, fresh LoRA/head) and each phase's
newest checkpoint is loaded into it; a staged run merges stage 1's LoRA before stage 2's is
added, as training did. A sharded checkpoint is read with torch.distributed.checkpoint in one
process (`no_dist`), which gathers every process's shards. FSDP runs use this at the end of each
phase too: the sharded module itself is never saved as a bundle.
"""

from __future__ import annotations

from pathlib import Path

from training.checkpoint import latest_checkpoint, load_trainable, read_state
from training.config import ConfigError, TrainConfig, load_config
from training.history import read_rows


def load_weights(path: Path, model) -> None:
    """Trainable tensors of a checkpoint (replicated or sharded) into an unsharded model."""
    state = read_state(path)
    if not state.get("sharded"):
        load_trainable(path, model)
        return
    import torch
    import torch.distributed.checkpoint as dcp

    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    target = {n: torch.empty_like(p.detach(), dtype=torch.float32) for n, p in trainable.items()}
    dcp.load({"model": target}, checkpoint_id=str(Path(path) / "sharded"), no_dist=True)
    with torch.no_grad():
        for n, t in target.items():
            trainable[n].copy_(t.to(trainable[n].dtype))


def phase_dirs(cfg: TrainConfig) -> dict[str, Path]:
    out = Path(cfg.out_dir)
    return {"stage1": out / "stage1", "stage2": out / "stage2"} if cfg.strategy.name == "staged" else {"train": out}


def _final(cfg: TrainConfig, phase: str) -> Path:
    ckpt = latest_checkpoint(phase_dirs(cfg)[phase] / "checkpoints")
    if ckpt is None:
        raise ConfigError(f"{phase_dirs(cfg)[phase]} has no complete checkpoint to export")
    return ckpt


def rebuild_model(cfg: TrainConfig, phases: tuple[str, ...]):
    """A fresh, unsharded model carrying the newest checkpoint of each phase in `phases`."""
    from training.loop import seed_everything
    from training.strategies import apply_strategy, merge_lora
    from training.trainer import build_model, prepare

    _, model_cfg, stats, _ = prepare(cfg)
    seed_everything(cfg.seed)
    model = build_model(cfg, model_cfg, stats)
    if cfg.strategy.name != "staged":
        apply_strategy(model, cfg.strategy.name, cfg.strategy.lora)
        load_weights(_final(cfg, "train"), model)
        return model
    s1 = cfg.strategy.stage1
    apply_strategy(model, "staged", s1.lora)
    load_weights(Path(s1.checkpoint) if s1.checkpoint else _final(cfg, "stage1"), model)
    if "stage2" in phases:
        merge_lora(model)
        apply_strategy(model, "staged", cfg.strategy.lora)
        load_weights(_final(cfg, "stage2"), model)
    return model


def export_bundle(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the bundle of the run in `run_dir` (its config.yaml and newest checkpoints)."""
    from training.trainer import action_space, open_stores, provenance
    from vla_robot.models.bundle import save_bundle

    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run} has no config.yaml: not a vla-train output directory")
    cfg = load_config(run / "config.yaml", [f"out_dir={run}"])
    dirs = phase_dirs(cfg)
    names = tuple(dirs) if not cfg.strategy.stage1.checkpoint else ("stage2",)
    model = rebuild_model(cfg, tuple(dirs))
    history = {name: read_rows(dirs[name] / "history.jsonl") for name in names}
    steps = {name: read_state(_final(cfg, name))["step"] for name in names}
    stores = open_stores(cfg.data.stores)
    prov = provenance(cfg, stores, history, 0.0)
    prov["exported_from"] = {name: str(_final(cfg, name)) for name in names}
    prov["exported_steps"] = steps
    return save_bundle(model, Path(out) if out else run / "bundle", action_space=action_space(stores[0].schema),
                       merge=cfg.merge_lora, provenance=prov)
