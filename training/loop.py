"""One optimisation phase: resume or start, wrap for the processes, run the steps, checkpoint.

Order matters and is the same for every process layout:
  1. restore the checkpoint's config check (refuse or apply changes) and its frozen set;
  2. probe which parameters each batch kind trains (replicated runs) or shard (FSDP);
  3. build the optimizer over the final (sharded) parameters, then load its state;
  4. wrap for DDP with `find_unused_parameters` only when the kinds train different sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from training.checkpoint import freeze, latest_checkpoint, load_checkpoint, read_state, save_checkpoint
from training.config import ConfigError, StoreRef, TrainConfig, resume_changes
from training.data import (RobotCollator, SampleStream, StreamBatchSampler, StreamDataset, VQACollator,
                           _generator, fixed_batches, stream_loader)
from training.distributed import (StepLog, clip_grad_norm, global_objective, make_accelerator, no_sync,
                                  probe_participation, shard_model, uses_fsdp, wrap_ddp)
from training.history import History
from training.phase_data import phase_data
from training.schedule import apply_hyperparameters, build_optimizer, warmup_cosine
from training.strategies import describe, enable_gradient_checkpointing
from vla_robot.models.prompting import VLAPreprocessor
from vla_robot.models.vla import VLAModel


@dataclass
class Phase:
    name: str
    stores: list[StoreRef]
    steps: int
    directory: Path
    history: list[dict] = field(default_factory=list)
    maps: list | None = None  # per-store sample maps (cross-embodiment stage 1)

    @property
    def checkpoints(self) -> Path:
        return self.directory / "checkpoints"


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class PhaseRunner:
    """Runs one optimisation phase with accelerate; resumable from its checkpoints."""

    def __init__(self, cfg: TrainConfig, model: VLAModel, phase: Phase, vqa_samples: list[dict] | None):
        self.cfg, self.model, self.phase = cfg, model, phase
        self.accelerator = make_accelerator(cfg.precision)
        self.sharded = uses_fsdp(self.accelerator, cfg.distributed.sharding)
        self.vqa_samples = vqa_samples if cfg.vqa.ratio > 0 else None
        model_cfg = model.config
        augment = None
        if cfg.data.augment.enabled:
            from training.augment import ImageAugmenter

            augment = ImageAugmenter(cfg.data.augment)
        where = "strategy.stage1.stores" if phase.name == "stage1" else "data.stores"
        self.data = phase_data(cfg, model_cfg, phase.stores, phase.maps, where, augment)
        use_state = model_cfg.state_dim > 0
        self.collate = RobotCollator(model.preprocessor, use_state, center=augment is None)
        self.val_collate = RobotCollator(model.preprocessor, use_state)
        self.vqa_collate = VQACollator(VLAPreprocessor(model_cfg.family, model.processor, ("vqa",),
                                                       model_cfg.image_size, model_cfg.crop_scale,
                                                       model_cfg.grounding_question))
        self.frozen: list[str] = []

    # ---------------------------------------------------------------- data
    def _pick_vqa(self, micro: int) -> bool:
        ratio = self.cfg.vqa.ratio
        if ratio <= 0 or not self.vqa_samples:
            return False
        return bool(torch.rand((), generator=_generator(self.cfg.seed, "mix", micro)) < ratio)

    def _start_positions(self, saved: dict | None, start_step: int) -> tuple[int, dict, int]:
        """(global micro-batch index, stream positions, block size) to continue from."""
        acc, cfg = self.accelerator, self.cfg
        global_batch = cfg.data.batch_size * acc.num_processes
        if saved is None:
            return 0, {"robot": 0, "vqa": 0}, global_batch
        if "data" in saved:
            d = saved["data"]
            return int(d["micro"]), {k: int(v) for k, v in d["positions"].items()}, int(d["block"])
        # a checkpoint from before the sample stream existed: one process, block = batch size
        micro = start_step * cfg.grad_accum
        n_vqa = sum(self._pick_vqa(m) for m in range(micro))
        bs = cfg.data.batch_size
        return micro, {"robot": (micro - n_vqa) * bs, "vqa": n_vqa * bs}, bs

    def _iterators(self, positions: dict, block: int) -> dict:
        acc, cfg = self.accelerator, self.cfg
        rank, world = acc.process_index, acc.num_processes
        robot = StreamBatchSampler(SampleStream(self.data.lengths, self.data.weights, block, cfg.seed, "robot"),
                                   positions["robot"], cfg.data.batch_size, rank, world)
        its = {"robot": iter(stream_loader(self.data.train, robot, self.collate, cfg.data.num_workers))}
        if self.vqa_samples:
            from training.vqa import VQADataset

            vqa_set = VQADataset(self.vqa_samples)
            vqa = StreamBatchSampler(SampleStream([len(vqa_set)], [1.0], block, cfg.seed, "vqa"), positions["vqa"],
                                     cfg.data.batch_size, rank, world)
            its["vqa"] = iter(stream_loader(StreamDataset([vqa_set]), vqa, self.vqa_collate, 0))
        return its

    def _probe_batches(self) -> dict[str, dict]:
        batches = {"robot": self.collate([self.data.train[0]])}
        if self.vqa_samples:
            batches["vqa"] = self.vqa_collate([self.vqa_samples[0]])
        return batches

    # ---------------------------------------------------------------- resume
    def _check_resume(self, ckpt: Path) -> dict:
        saved = read_state(ckpt)
        if "config" not in saved:
            return saved
        refused, applied = resume_changes(saved["config"], self.cfg)
        if refused:
            lines = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, a, b in refused)
            raise ConfigError(f"[{self.phase.name}] the config differs from the checkpoint {ckpt} it would resume:\n"
                              f"{lines}\nUse the checkpoint's values, start a new out_dir (or resume=false), or list "
                              f"the keys in resume_apply=[...] to apply them from this step on")
        if applied:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in applied)
            self.accelerator.print(f"[{self.phase.name}] resume: applying changed settings from step "
                                   f"{saved['step']}: {lines}")
        world = saved.get("world_size", 1)
        if world != self.accelerator.num_processes:
            old_g = saved.get("data", {}).get("global_batch", self.cfg.data.batch_size * world)
            new_g = self.cfg.data.batch_size * self.accelerator.num_processes
            self.accelerator.print(
                f"[{self.phase.name}] resume: {world} -> {self.accelerator.num_processes} processes; the sample order "
                f"continues where it stopped, the global batch is {old_g} -> {new_g} samples"
                + ("" if old_g == new_g else " (set data.batch_size so that batch_size x processes stays the same "
                                             "to keep the optimisation identical)"))
        return saved

    # ---------------------------------------------------------------- run
    def run(self) -> list[dict]:
        cfg, phase, acc = self.cfg, self.phase, self.accelerator
        phase.directory.mkdir(parents=True, exist_ok=True)
        history = History(phase.directory / "history.jsonl", acc.is_main_process)
        ckpt = latest_checkpoint(phase.checkpoints) if cfg.resume else None
        saved = self._check_resume(ckpt) if ckpt is not None else None
        start = int(saved["step"]) if saved else 0
        model = self.model
        if cfg.model.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if self.sharded:
            model = shard_model(model, acc, cfg.distributed.reshard_after_forward)
        else:
            model.to(acc.device)
            if saved:
                freeze(model, saved.get("frozen_unused", []))
            participation = probe_participation(model, self._probe_batches(), acc.autocast)
            self.frozen = sorted(set(saved.get("frozen_unused", []) if saved else []) | set(participation.frozen))
            acc.print(f"[{phase.name}] {participation.describe()}")
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = warmup_cosine(optimizer, cfg.optim.warmup_steps, phase.steps, cfg.optim.min_lr_ratio)
        if saved:
            load_checkpoint(ckpt, model, optimizer, scheduler, acc, self.sharded)
            apply_hyperparameters(optimizer, scheduler, cfg.optim)
            acc.print(f"[{phase.name}] resuming from {ckpt} (step {start})")
        else:
            seed_everything(cfg.seed)
        phase.history = history.restart(start)
        if not self.sharded:
            model = wrap_ddp(acc, model, participation.varies)
        self.wrapped = model
        if start >= phase.steps:
            return phase.history
        acc.print(f"[{phase.name}] {describe(unwrap_all(model))}")
        writer = self._tensorboard()
        micro, positions, block = self._start_positions(saved, start)
        its = self._iterators(positions, block)
        global_batch = cfg.data.batch_size * acc.num_processes
        trainable = [p for p in model.parameters() if p.requires_grad]
        names = [g.get("name", "") for g in optimizer.param_groups]
        head_group = next((i for i, n in enumerate(names) if n.startswith("head")), 0)
        backbone_group = next((i for i, n in enumerate(names) if n.startswith("backbone")), head_group)
        stop_at = min(phase.steps, start + cfg.stop_after) if cfg.stop_after else phase.steps
        bar = tqdm(range(start, stop_at), desc=phase.name, disable=not acc.is_main_process, dynamic_ncols=True)
        for step in bar:
            model.train()
            log = StepLog()
            for i in range(cfg.grad_accum):
                kind = "vqa" if self._pick_vqa(micro) else "robot"
                batch = next(its[kind])
                with no_sync(acc, model, self.sharded, i == cfg.grad_accum - 1), acc.autocast():
                    out = model(batch)
                    loss = global_objective(acc, out["terms"]) / cfg.grad_accum
                    loss.backward() if self.sharded else acc.backward(loss)
                log.add(out["terms"])
                positions[kind] += global_batch
                micro += 1
            logs = log.result(acc)
            grad_norm = clip_grad_norm(acc, trainable, cfg.optim.grad_clip, self.sharded)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            record = {"step": done, **logs, "grad_norm": grad_norm, "lr_head": optimizer.param_groups[head_group]["lr"],
                      "lr_backbone": optimizer.param_groups[backbone_group]["lr"]}
            if self.data.val is not None and (done % cfg.val_every == 0 or done == phase.steps):
                record["val_loss"] = self.validate(model)
            history.append(record)
            if acc.is_main_process and (done % cfg.log_every == 0 or "val_loss" in record or done == phase.steps):
                self._log(writer, record, done)
                if "loss" in logs:
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", **({"val": f"{record['val_loss']:.4f}"}
                                                                    if "val_loss" in record else {}))
            if done % cfg.ckpt_every == 0 or done == phase.steps:
                state = {"phase": phase.name, "config": cfg.to_dict(), "frozen_unused": self.frozen,
                         "data": {"micro": micro, "positions": positions, "block": block, "global_batch": global_batch}}
                save_checkpoint(phase.checkpoints, done, unwrap_all(model) if not self.sharded else model, optimizer,
                                scheduler, state, acc, self.sharded, cfg.keep_checkpoints)
        phase.history = history.rows
        if writer is not None:
            writer.close()
        if self._wandb is not None:
            self._wandb.finish()
        return phase.history

    def release(self) -> VLAModel | None:
        """The trained, unwrapped model (replicated runs); None after FSDP (rebuild it from the checkpoint).
        Drops the DDP wrapper so its gradient hooks go with it."""
        wrapped = getattr(self, "wrapped", None)
        self.wrapped = None
        self.accelerator._models.clear()
        if self.sharded:
            self.model = None
            return None
        return unwrap_all(wrapped) if wrapped is not None else self.model

    def _log(self, writer, record: dict, step: int) -> None:
        scalars = {f"{self.phase.name}/{k}": v for k, v in record.items() if k != "step"}
        if writer is not None:
            for k, v in scalars.items():
                writer.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    @torch.no_grad()
    def validate(self, model) -> float:
        """Mean action loss over fixed batches of held-out episodes (no augmentation, centre crop)."""
        model.eval()
        log = StepLog()
        for b in fixed_batches(self.data.val, self.cfg.data.batch_size, self.cfg.val_batches, self.val_collate):
            with self.accelerator.autocast():
                log.add(model(b)["terms"])
        model.train()
        # every process ran the same batches: no reduction needed
        return float(log.result(_Local()).get("loss", float("nan")))

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


class _Local:
    num_processes = 1


def unwrap_all(model):
    return getattr(model, "module", model)
