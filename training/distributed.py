"""Processes, wrapping and precision: the parts of a phase that differ between 1 process, DDP and FSDP.

DDP and unused parameters. A DDP reducer waits, in every backward, for a gradient of every
trainable parameter. Three kinds of batches here leave trainable parameters without one:
a VQA micro-batch never touches the action queries and the head; the discrete target never
touches them either; the robot path calls the backbone's `.model`, so an untied `lm_head` (and
PaliGemma's unused SigLIP pooling head, trainable under `full`) never gets a gradient. Measured
with 2 gloo processes (tests/test_training_distributed.py, and a toy in docs/training.md):
without `find_unused_parameters` a 1-step run ends with the processes' weights silently apart
(reductions whose bucket never completed are skipped), and the second step raises "Expected to
have finished reduction in the prior iteration". With it, everything matches one process, and
globally unused parameters keep `grad=None`, so AdamW skips them exactly as one process does.

So each phase first probes (one forward/backward per batch kind on one sample, RNG restored)
which trainable parameters each kind uses. Parameters no kind uses are frozen (numerically a
no-op: they would never get a gradient) and listed; `find_unused_parameters` is switched on
only when the kinds use different sets (VQA co-training), because the search for unused
parameters walks the autograd graph after every forward. The probe runs for one process
too, so a checkpoint's trainable set does not depend on the number of processes.

FSDP. accelerate only wraps FSDP on GPU-type backends (its CPU multi-process mode is DDP only),
so the trainer shards itself with FSDP2 `fully_shard` (torch >= 2.6), which works with gloo on
CPU: each decoder/vision layer is one unit, the rest (embeddings, queries, head) the root unit.
The optimizer is built after sharding, over the sharded parameters. FSDP2 reduces only the
gradients that exist, so no probe is needed (and none runs: it would need the unsharded model).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from vla_robot.models.vla import objective, unwrap


@dataclass
class Participation:
    """Which trainable parameters each batch kind uses, and what the phase does about it."""

    used: dict[str, set[str]]
    frozen: list[str] = field(default_factory=list)

    @property
    def varies(self) -> bool:
        return len({frozenset(u) for u in self.used.values()}) > 1

    def describe(self) -> str:
        parts = []
        if self.frozen:
            shown = ", ".join(self.frozen[:4]) + (f" and {len(self.frozen) - 4} more" if len(self.frozen) > 4 else "")
            parts.append(f"{len(self.frozen)} trainable tensors get no gradient from any batch and are frozen ({shown})")
        if self.varies:
            kinds = " and ".join(sorted(self.used))
            parts.append(f"{kinds} batches train different parameters: DDP (several processes) searches unused ones "
                         "every step")
        return "; ".join(parts) or "every trainable tensor gets a gradient from every batch"


def probe_participation(model: nn.Module, batches: dict[str, dict], autocast) -> Participation:
    """One forward/backward per batch kind on the unwrapped model; freezes parameters no kind uses."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    used: dict[str, set[str]] = {}
    for kind, batch in batches.items():
        model.zero_grad(set_to_none=True)
        with autocast():
            out = model(batch)
        if not out["loss"].requires_grad:
            from training.config import ConfigError

            raise ConfigError(f"{kind} batches train no parameter with this strategy; leave them out or pick a "
                              "strategy that trains what their loss reaches")
        out["loss"].backward()
        used[kind] = {n for n, p in trainable.items() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    anywhere = set().union(*used.values()) if used else set(trainable)
    frozen = sorted(n for n in trainable if n not in anywhere)
    for n in frozen:
        trainable[n].requires_grad_(False)
    return Participation(used, frozen)


def one_sample(batch_fn, dataset) -> dict:
    return batch_fn([dataset[0]])


# ------------------------------------------------------------------ accelerate
def process_state():
    """accelerate's view of the processes. Without CUDA, `cpu=True` is what makes accelerate join the
    torchrun processes into one gloo group; without it each process trains alone. (`accelerate launch
    --cpu --num_processes 2` starts ONE process unless mpirun is set up: launch CPU runs with torchrun
    or `accelerate launch --multi_gpu`, docs/training.md.)"""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def make_accelerator(precision: str):
    """An Accelerator with bf16 autocast for precision bf16/bf16_pure (float32 master weights for bf16)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    mixed = "bf16" if precision in ("bf16", "bf16_pure") else "no"
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed) != mixed:
        AcceleratorState._reset_state()  # a second run in one process (tests, notebooks) with other precision
    return Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())


def uses_fsdp(acc, sharding: str) -> bool:
    from accelerate.utils import DistributedType

    return sharding == "fsdp" or acc.distributed_type == DistributedType.FSDP


def wrap_ddp(acc, model: nn.Module, find_unused: bool) -> nn.Module:
    from accelerate.utils import DistributedDataParallelKwargs

    acc.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=find_unused)
    return acc.prepare_model(model)


# ------------------------------------------------------------------ FSDP2
def shard_units(model: nn.Module) -> list[nn.Module]:
    """The backbone's repeated blocks (decoder and vision layers): one FSDP unit each."""
    backbone = unwrap(model.backbone)
    names = set(getattr(backbone, "_no_split_modules", None) or [])
    units = [m for m in backbone.modules() if type(m).__name__ in names]
    if not units:  # fall back to every ModuleList entry
        units = [m for lst in backbone.modules() if isinstance(lst, nn.ModuleList) for m in lst]
    return units


def shard_model(model: nn.Module, acc, reshard_after_forward: bool = True) -> nn.Module:
    """FSDP2 over a 1-D mesh of all processes; parameters become DTensors sharded on dim 0.

    The model stays where it was built (CPU): `fully_shard` moves each unit's parameters to the
    mesh device as it shards them, so no process ever holds the whole model on its GPU."""
    from torch.distributed.device_mesh import init_device_mesh

    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:  # FSDP2 is public from torch 2.6
        from training.config import ConfigError

        raise ConfigError(f"distributed.sharding=fsdp needs FSDP2 (torch >= 2.6); this is torch {torch.__version__}. "
                          "Use distributed.sharding=none (DDP)") from exc

    mesh = init_device_mesh(acc.device.type, (acc.num_processes,))
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def no_sync(acc, model: nn.Module, sharded: bool, sync: bool):
    """Skip the gradient reduction of a micro-batch that is not the last of its step."""
    if sync or acc.num_processes == 1:
        return contextlib.nullcontext()
    if sharded:
        model.set_requires_gradient_sync(False)
        return _restore_sync(model)
    return acc.no_sync(model)


@contextlib.contextmanager
def _restore_sync(model):
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def clip_grad_norm(acc, params: list[torch.Tensor], max_norm: float, sharded: bool) -> float:
    if sharded:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    return float(acc.clip_grad_norm_(params, max_norm))


# ------------------------------------------------------------------ losses over processes
def global_objective(acc, terms: dict) -> torch.Tensor:
    """The loss to backpropagate so that averaged gradients equal one process's on the whole batch.

    Each term is normalised by its element count summed over processes (divided by the number
    of processes, which DDP/FSDP gradient averaging multiplies back)."""
    counts = torch.stack([t.count.float() for t in terms.values()]).to(acc.device)
    if acc.num_processes > 1:
        counts = acc.reduce(counts, "sum") / acc.num_processes
    return objective(terms, counts)


class StepLog:
    """Per-term sums and counts over a step's micro-batches, reduced over processes once per step.

    Logged: each term's mean over every element of the step; `loss` = the robot objective
    (weighted sum of the robot terms), `vqa_loss` = the LM loss on VQA answers. A step without a
    robot micro-batch logs no `loss`; one without VQA logs no `vqa_loss`."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, terms: dict) -> None:
        for name, t in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(t.total.detach())
            self.counts[name] = self.counts.get(name, 0.0) + float(t.count)
            self.weights[name] = t.weight

    def result(self, acc) -> dict[str, float]:
        names = sorted(self.sums)
        values = torch.tensor([self.sums[n] for n in names] + [self.counts[n] for n in names], dtype=torch.float64)
        if acc.num_processes > 1:
            values = acc.reduce(values.to(acc.device), "sum").cpu()
        k = len(names)
        means = {n: float(values[i] / max(float(values[k + i]), 1.0)) for i, n in enumerate(names)}
        out = dict(means)
        robot = [n for n in names if n != "vqa_loss"]
        if robot:
            out["loss"] = sum(self.weights[n] * means[n] for n in robot)
        return out
