"""The trainer: one call from a validated `TrainConfig` to a policy bundle.

    bundle_dir = train(load_config("my.yaml", ["steps=2000"]))

Phases: every strategy runs one phase, except `staged`, which runs stage 1 (LoRA on the
pretraining mixture) → merge → stage 2 (fresh LoRA on the target stores). Each phase
writes checkpoints under its own directory and resumes from the newest one.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from training.checkpoint import latest_checkpoint, load_checkpoint, load_trainable, save_checkpoint
from training.config import ConfigError, StoreRef, TrainConfig, save_config
from training.data import RobotCollator, VQACollator, _generator, fixed_batches, mixture_loader
from training.schedule import build_optimizer, warmup_cosine
from training.strategies import apply_strategy, describe, merge_lora
from vla_robot.models.bundle import save_bundle
from vla_robot.models.config import VLAConfig
from vla_robot.models.normalization import check_stats
from vla_robot.models.prompting import VLAPreprocessor
from vla_robot.models.vla import VLAModel


@dataclass
class Phase:
    name: str
    stores: list[StoreRef]
    steps: int
    directory: Path
    history: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------------ setup
def open_stores(refs: list[StoreRef]):
    from vla_robot.data.store import EpisodeStore

    stores = []
    for ref in refs:
        try:
            stores.append(EpisodeStore.open(ref.url))
        except Exception as exc:  # noqa: BLE001 - name the config entry
            raise ConfigError(f"cannot open store {ref.url!r}: {exc}") from exc
    return stores


def resolve_model_config(cfg: TrainConfig, schema) -> VLAConfig:
    m = cfg.model
    cameras = tuple(cfg.data.cameras) or schema.camera_names
    names = list(schema.action_space.get("names") or schema.joint_names)
    grip = m.gripper_dims if m.gripper_dims is not None else [i for i, n in enumerate(names[: schema.action_dim])
                                                              if "gripper" in str(n).lower()]
    return VLAConfig(family=m.family, backbone=m.backbone, action_dim=schema.action_dim, horizon=m.horizon,
                     state_dim=schema.state_dim if m.use_proprio else 0, cameras=cameras, image_size=m.image_size,
                     num_action_queries=m.num_action_queries, head_hidden=m.head_hidden, head_layers=m.head_layers,
                     target=m.target, gripper_dims=tuple(grip), num_bins=m.num_bins,
                     goal_loss_weight=m.goal_loss_weight, trust_remote_code=m.trust_remote_code)


def check_data(cfg: TrainConfig, stores, where: str) -> None:
    """Fail before compute when chunks are longer than the episodes or cameras are missing."""
    first = stores[0].schema
    for store in stores:
        lengths = [store.episode_length(i) for i in store.episode_indices()]
        if not lengths:
            raise ConfigError(f"{where}: store {store.url} has no committed episodes")
        if cfg.model.horizon > max(lengths):
            raise ConfigError(f"model.horizon={cfg.model.horizon} is longer than the longest episode "
                              f"({max(lengths)} frames) in {store.url}: every chunk would be mostly padding; "
                              "lower the horizon")
        # shorter episodes are fine: their chunks are padded and the pad steps masked out of the loss
        missing = [c for c in cfg.data.cameras if c not in store.schema.camera_names]
        if missing:
            raise ConfigError(f"data.cameras {missing} not in {store.url}; it has {list(store.schema.camera_names)}")
        if (store.schema.action_dim, store.schema.state_dim) != (first.action_dim, first.state_dim):
            raise ConfigError(f"{where}: {store.url} has action/state dims {store.schema.action_dim}/"
                              f"{store.schema.state_dim}, {stores[0].url} has {first.action_dim}/{first.state_dim}")


def load_stats(cfg: TrainConfig, stores) -> dict:
    if cfg.data.stats_path:
        path = Path(cfg.data.stats_path)
        if not path.is_file():
            raise ConfigError(f"data.stats_path {path} does not exist")
        return json.loads(path.read_text())
    if len(stores) == 1:
        return stores[0].stats()
    from vla_robot.data.stats import compute_stats

    cols = {k: np.concatenate([s.read(k, i) for s in stores for i in s.episode_indices()]) for k in ("state", "action")}
    return compute_stats(cols)


def build_model(cfg: TrainConfig, model_cfg: VLAConfig, stats: dict) -> VLAModel:
    check_stats(stats, model_cfg.action_dim, model_cfg.state_dim)
    dtype = torch.bfloat16 if cfg.precision == "bf16" and torch.cuda.is_available() else None
    return VLAModel.from_pretrained_backbone(model_cfg, stats, dtype=dtype)


def datasets(cfg: TrainConfig, model_cfg: VLAConfig, refs: list[StoreRef], split: str):
    from vla_robot.data.dataset import VLADataset

    size = (model_cfg.image_size, model_cfg.image_size)
    out = []
    for ref in refs:
        ds = VLADataset(ref.url, cameras=list(model_cfg.cameras), image_size=size, horizon=model_cfg.horizon,
                        split=split, val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
        out.append(ds)
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------ one phase
class PhaseRunner:
    """Runs one optimisation phase with accelerate; resumable from its checkpoints."""

    def __init__(self, cfg: TrainConfig, model: VLAModel, phase: Phase, vqa_samples: list[dict] | None):
        from accelerate import Accelerator

        self.cfg, self.model, self.phase = cfg, model, phase
        from accelerate.state import AcceleratorState

        precision = "bf16" if cfg.precision == "bf16" else "no"
        state = AcceleratorState._shared_state
        if state and state.get("_mixed_precision", precision) != precision:
            AcceleratorState._reset_state()  # a second run in one process (tests, notebooks) with other precision
        self.accelerator = Accelerator(mixed_precision=precision)
        self.vqa_samples = vqa_samples
        model_cfg = model.config
        self.train_sets = datasets(cfg, model_cfg, phase.stores, "train")
        empty = [r.url for r, d in zip(phase.stores, self.train_sets) if len(d) == 0]
        if empty:
            raise ConfigError(f"{phase.name}: no training episodes in {empty} (val_fraction too high?)")
        self.val_sets = [d for d in datasets(cfg, model_cfg, phase.stores, "val") if len(d)]
        self.collate = RobotCollator(model.preprocessor, use_state=model_cfg.state_dim > 0)
        self.vqa_collate = VQACollator(VLAPreprocessor(model_cfg.family, model.processor, ("vqa",),
                                                       model_cfg.image_size))

    def _pick_vqa(self, micro: int) -> bool:
        ratio = self.cfg.vqa.ratio
        if ratio <= 0 or not self.vqa_samples:
            return False
        return bool(torch.rand((), generator=_generator(self.cfg.seed, "mix", micro)) < ratio)

    def _loaders(self, start_micro: int):
        n_vqa = sum(self._pick_vqa(m) for m in range(start_micro))
        cfg = self.cfg
        acc = self.accelerator
        rank = f":rank{acc.process_index}" if acc.num_processes > 1 else ""  # each process its own batches
        robot = mixture_loader(self.train_sets, [r.weight for r in self.phase.stores], cfg.data.batch_size,
                               cfg.seed, self.collate, cfg.data.num_workers, start_micro - n_vqa, "robot" + rank)
        vqa = None
        if cfg.vqa.ratio > 0 and self.vqa_samples:
            from training.vqa import VQADataset

            vqa = mixture_loader([VQADataset(self.vqa_samples)], [1.0], cfg.data.batch_size, cfg.seed,
                                 self.vqa_collate, 0, n_vqa, "vqa" + rank)
        return iter(robot), iter(vqa) if vqa is not None else None

    def run(self) -> list[dict]:
        cfg, phase, acc = self.cfg, self.phase, self.accelerator
        phase.directory.mkdir(parents=True, exist_ok=True)
        model = self.model
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = warmup_cosine(optimizer, cfg.optim.warmup_steps, phase.steps, cfg.optim.min_lr_ratio)
        start = 0
        history_path = phase.directory / "history.jsonl"
        ckpt = latest_checkpoint(phase.directory / "checkpoints") if cfg.resume else None
        if ckpt is not None:
            start = load_checkpoint(ckpt, model, optimizer, scheduler)["step"]
            phase.history = [json.loads(x) for x in history_path.read_text().splitlines()] if history_path.exists() else []
            phase.history = [h for h in phase.history if h["step"] <= start]
            acc.print(f"[{phase.name}] resuming from {ckpt} (step {start})")
        else:
            _seed_everything(cfg.seed)
        model, optimizer = acc.prepare(model, optimizer)
        if start >= phase.steps:
            return phase.history
        acc.print(f"[{phase.name}] {describe(acc.unwrap_model(model))}")
        writer = self._tensorboard()
        robot_it, vqa_it = self._loaders(start * cfg.grad_accum)
        trainable = [p for p in model.parameters() if p.requires_grad]
        stop_at = min(phase.steps, start + cfg.stop_after) if cfg.stop_after else phase.steps
        bar = tqdm(range(start, stop_at), desc=phase.name, disable=not acc.is_main_process, dynamic_ncols=True)
        for step in bar:
            model.train()
            logs: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                m = step * cfg.grad_accum + micro
                is_vqa = self._pick_vqa(m)
                batch = next(vqa_it) if is_vqa else next(robot_it)
                sync = contextlib.nullcontext() if micro == cfg.grad_accum - 1 else acc.no_sync(model)
                with sync, acc.autocast():
                    out = model(batch)
                    acc.backward(out["loss"] / cfg.grad_accum)
                for k, v in out.items():
                    key = k if k != "loss" else ("vqa_loss" if is_vqa else "loss")
                    logs[key] = logs.get(key, 0.0) + float(v.detach()) / cfg.grad_accum
            if acc.num_processes > 1:  # log the mean over processes (every rank has the same keys)
                keys = sorted(logs)
                mean = acc.reduce(torch.tensor([logs[k] for k in keys], device=acc.device), "mean")
                logs = dict(zip(keys, mean.tolist()))
            grad_norm = acc.clip_grad_norm_(trainable, cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            record = {"step": done, **logs, "grad_norm": float(grad_norm),
                      "lr_head": optimizer.param_groups[0]["lr"], "lr_backbone": optimizer.param_groups[-1]["lr"]}
            if self.val_sets and (done % cfg.val_every == 0 or done == phase.steps):
                record["val_loss"] = self.validate(model)
            phase.history.append(record)
            if acc.is_main_process:
                with history_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                if done % cfg.log_every == 0 or "val_loss" in record or done == phase.steps:
                    self._log(writer, record, done)
                    if "loss" in logs:
                        bar.set_postfix(loss=f"{logs['loss']:.4f}", **({"val": f"{record['val_loss']:.4f}"}
                                                                        if "val_loss" in record else {}))
            if done % cfg.ckpt_every == 0 or done == phase.steps:
                self._save(model, optimizer, scheduler, done)
        if writer is not None:
            writer.close()
        if self._wandb is not None:
            self._wandb.finish()
        return phase.history

    def _log(self, writer, record: dict, step: int) -> None:
        scalars = {f"{self.phase.name}/{k}": v for k, v in record.items() if k != "step"}
        if writer is not None:
            for k, v in scalars.items():
                writer.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def _save(self, model, optimizer, scheduler, step: int) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_checkpoint(self.phase.directory / "checkpoints" / f"step_{step:07d}", acc.unwrap_model(model),
                            optimizer, scheduler, step, {"phase": self.phase.name})

    @torch.no_grad()
    def validate(self, model) -> float:
        from torch.utils.data import ConcatDataset

        model.eval()
        batches = fixed_batches(ConcatDataset(self.val_sets), self.cfg.data.batch_size, self.cfg.val_batches,
                                self.collate)
        losses = []
        for b in batches:
            with self.accelerator.autocast():
                losses.append(float(model(b)["loss"]))
        model.train()
        return float(np.mean(losses)) if losses else float("nan")

    def _tensorboard(self):
        self._wandb = None
        if not self.accelerator.is_main_process:
            return None
        if self.cfg.wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise ConfigError("wandb_project is set but wandb is not installed (pip install wandb)") from exc
            self._wandb = wandb
            wandb.init(project=self.cfg.wandb_project, name=f"{Path(self.cfg.out_dir).name}-{self.phase.name}",
                       config=self.cfg.to_dict(), dir=str(self.cfg.out_dir))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(Path(self.cfg.out_dir) / "tensorboard"))


# ------------------------------------------------------------------------ whole run
def prepare(cfg: TrainConfig):
    """Every check that needs no compute: stores, chunk length, stats, model config."""
    cfg.validate()
    target_stores = open_stores(cfg.data.stores)
    check_data(cfg, target_stores, "data.stores")
    if cfg.strategy.name == "staged" and cfg.strategy.stage1.stores:
        check_data(cfg, open_stores(cfg.strategy.stage1.stores), "strategy.stage1.stores")
    schema = target_stores[0].schema
    model_cfg = resolve_model_config(cfg, schema)
    stats = load_stats(cfg, target_stores)
    check_stats(stats, model_cfg.action_dim, model_cfg.state_dim)
    return schema, model_cfg, stats, target_stores


def train(cfg: TrainConfig) -> Path:
    """Train according to `cfg` and write `<out_dir>/bundle`; returns the bundle path."""
    from accelerate import PartialState

    schema, model_cfg, stats, target_stores = prepare(cfg)
    main_process = PartialState().is_main_process
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if main_process:
        save_config(cfg, out / "config.yaml")
    _seed_everything(cfg.seed)
    model = build_model(cfg, model_cfg, stats)
    vqa = vqa_samples(cfg, model_cfg)
    phases: list[Phase] = []
    t0 = time.time()
    if cfg.strategy.name == "staged":
        s1 = cfg.strategy.stage1
        apply_strategy(model, "staged", s1.lora)
        stage1 = Phase("stage1", s1.stores, s1.steps, out / "stage1")
        if s1.checkpoint:
            load_trainable(Path(s1.checkpoint), model)
            PartialState().print(f"[stage1] starting stage 2 from stage-1 checkpoint {s1.checkpoint}")
        else:
            PhaseRunner(cfg, model, stage1, vqa).run()
            phases.append(stage1)
        model = _unwrap(model)
        merge_lora(model)
        _seed_everything(cfg.seed + 1)  # stage 2 starts the same whether stage 1 ran now or was loaded
        apply_strategy(model, "staged", cfg.strategy.lora)
        stage2 = Phase("stage2", cfg.data.stores, cfg.steps, out / "stage2")
        PhaseRunner(cfg, model, stage2, vqa).run()
        phases.append(stage2)
    else:
        apply_strategy(model, cfg.strategy.name, cfg.strategy.lora)
        main = Phase("train", cfg.data.stores, cfg.steps, out)
        PhaseRunner(cfg, model, main, vqa).run()
        phases.append(main)
    model = _unwrap(model)
    if cfg.stop_after and any(len(p.history) < p.steps for p in phases):
        return out
    history = {p.name: p.history for p in phases}
    bundle = out / "bundle"
    PartialState().wait_for_everyone()
    if not main_process:
        return bundle
    bundle = save_bundle(model, out / "bundle", action_space=_action_space(schema), merge=cfg.merge_lora,
                         provenance=_provenance(cfg, target_stores, history, time.time() - t0),
                         scene=training_scene(target_stores))
    from training.plots import plot_curves

    png = plot_curves(history, out / "curves.png")
    print(f"bundle: {bundle}\ntraining curves: {png}")
    return bundle


def _unwrap(model):
    return getattr(model, "module", model)


def vqa_samples(cfg: TrainConfig, model_cfg: VLAConfig) -> list[dict] | None:
    if cfg.vqa.ratio <= 0:
        return None
    from training.vqa import generate_twin_vqa, load_jsonl_vqa

    if cfg.vqa.source == "twin":
        return generate_twin_vqa(cfg.vqa.num_samples, image_size=model_cfg.image_size, robot=cfg.vqa.robot,
                                 seed=cfg.vqa.seed, n_cards=cfg.vqa.n_cards or None,
                                 layout_seed=None if cfg.vqa.layout_seed < 0 else cfg.vqa.layout_seed,
                                 questions=cfg.vqa.questions)
    return load_jsonl_vqa(cfg.vqa.source)


def training_scene(stores) -> dict | None:
    """The scene every target store was recorded in (``schema.extra["scene"]``), or None when a
    store has none or they differ: then `vla-robot eval`/`deploy` fall back to their own defaults."""
    scenes = [store.schema.extra.get("scene") for store in stores]
    if not scenes or any(s is None for s in scenes) or any(s != scenes[0] for s in scenes[1:]):
        if len({json.dumps(s, sort_keys=True) for s in scenes}) > 1:
            print(f"[bundle] the target stores were recorded in different scenes; the bundle names none: {scenes}")
        return None
    return dict(scenes[0])


def _action_space(schema) -> dict:
    return {**schema.action_space, "robot": schema.robot, "joint_names": list(schema.joint_names),
            "control_rate_hz": schema.control_rate_hz, "state_dim": schema.state_dim,
            "action_dim": schema.action_dim}


def _provenance(cfg: TrainConfig, stores, history: dict, seconds: float) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    last = {name: (h[-1] if h else {}) for name, h in history.items()}
    return {"git_commit": commit, "train_config": cfg.to_dict(), "train_seconds": round(seconds, 1),
            "stores": [{"url": s.url, "episodes": s.num_episodes, "frames": s.num_frames} for s in stores],
            "final_metrics": last, "torch": torch.__version__}
