"""Training throughput and peak memory per update strategy, data-loader vs train-step rate, and scaling.

    python bench/bench_train.py                       # tiny PaliGemma on CPU, real store (< 2 min)
    python bench/bench_train.py --device cuda --size 3b --steps 10   # PaliGemma-3B-sized random config, bf16
    python bench/bench_train.py --scaling             # 1 vs 2 processes (torchrun, gloo on CPU / nccl on GPU)

The cuda/3b mode needs only torch + transformers + peft (synthetic batches, no zarr/mujoco).
Baseline for the ratios: the `full` strategy measured in the same run. The scaling table keeps
the per-process batch fixed (weak scaling) and reports global samples/s and the efficiency
samples/s(N) / (N x samples/s(1)); its baseline is the 1-process run measured in the same call.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ("full", "lora", "staged_stage2", "head_only")
SCALING = [  # (label, strategy, processes, mode)
    ("lora 1 proc", "lora", 1, "ddp"), ("lora 2 proc DDP", "lora", 2, "ddp"),
    ("lora 2 proc DDP find_unused", "lora", 2, "ddp_find_unused"), ("lora 2 proc FSDP2", "lora", 2, "fsdp"),
    ("full 1 proc", "full", 1, "ddp"), ("full 2 proc DDP", "full", 2, "ddp"),
    ("full 2 proc DDP find_unused", "full", 2, "ddp_find_unused"), ("full 2 proc FSDP2", "full", 2, "fsdp"),
]


def paligemma_3b(tmp: Path, image_size: int = 224) -> Path:
    """A random PaliGemma-3B-sized checkpoint (SigLIP-So400m/14 + Gemma-2B, 257k vocab, 256 image tokens)
    saved as a local directory with a tiny tokenizer and the real processor classes."""
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, SiglipVisionConfig

    from vla_robot.models.tiny import make_tiny_backbone

    out = make_tiny_backbone("paligemma", tmp / "pg3b", image_size=image_size, patch_size=14)
    from transformers import AutoConfig

    image_token = AutoConfig.from_pretrained(out).image_token_id
    cfg = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                         num_attention_heads=16, image_size=image_size, patch_size=14),
        text_config=GemmaConfig(vocab_size=257216, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                                num_attention_heads=8, num_key_value_heads=1, head_dim=256),
        image_token_id=image_token, projection_dim=2048)
    cfg.vision_config.projection_dim = 2048
    cfg.text_config.num_image_tokens = (image_size // 14) ** 2
    with torch.device("cuda"):
        model = PaliGemmaForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def build(backbone: Path, strategy: str, device: str, dtype):
    from training.config import LoraSection
    from training.strategies import apply_strategy, merge_lora
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.vla import VLAModel

    stats = {"action": {k: [-1.0] * 7 if k in ("q01", "min") else [1.0] * 7 for k in ("q01", "q99", "min", "max")},
             "state": {"mean": [0.0] * 7, "std": [1.0] * 7}}
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=4, state_dim=7,
                    cameras=("front",), image_size=32 if device == "cpu" else 224, num_action_queries=8,
                    head_hidden=256, gripper_dims=(6,))
    model = VLAModel.from_pretrained_backbone(cfg, stats, dtype=dtype).to(device)
    lora = LoraSection(rank=16, alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    if strategy == "staged_stage2":
        apply_strategy(model, "staged", lora)
        merge_lora(model)
        apply_strategy(model, "staged", lora)
    else:
        apply_strategy(model, strategy, lora)
    return model.to(device)


def synthetic_batch(model, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    size = model.config.image_size
    images = {"front": torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)}
    return {"inputs": model.preprocess(images, ["put the cube on the grinning face"] * batch),
            "state": torch.randn(batch, 7, generator=g), "action": torch.rand(batch, 4, 7, generator=g) * 2 - 1,
            "action_is_pad": torch.zeros(batch, 4, dtype=torch.bool)}


def time_steps(model, batches, steps: int, device: str, dtype) -> dict:
    from training.config import OptimConfig
    from training.schedule import build_optimizer

    opt = build_optimizer(model, OptimConfig())
    model.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step(b):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype is not None):
            loss = model(b)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for i in range(3):  # warm-up: the first CPU/GPU steps pay one-time kernel and allocator setup
        step(batches[i % len(batches)])
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    bs = batches[0]["action"].shape[0]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trainable, total = model.parameter_counts()
    return {"samples_per_s": steps * bs / dt, "step_ms": 1000 * dt / steps, "peak_mem_mib": round(peak, 1),
            "trainable": trainable, "total": total}


def loader_rate(store: str, model, batch: int, batches: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    from training.data import RobotCollator, SampleStream, StreamBatchSampler, StreamDataset
    from vla_robot.data.dataset import VLADataset

    ds = VLADataset(store, cameras=["front"], image_size=(32, 32), horizon=4, split="all")
    sampler = StreamBatchSampler(SampleStream([len(ds)], [1.0], batch, 0, "robot"), 0, batch)
    loader = DataLoader(StreamDataset([ds]), batch_sampler=sampler, collate_fn=RobotCollator(model.preprocessor, True),
                        num_workers=workers)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t)


def scaling_worker(args) -> None:
    """One process of a scaling run: the trainer's wrapping (probe + DDP, or FSDP2) and loss normalisation
    on synthetic batches of `--batch` per process; process 0 writes the timing."""
    from training.config import OptimConfig
    from training.distributed import (global_objective, make_accelerator, probe_participation, shard_model,
                                      wrap_ddp)
    from training.schedule import build_optimizer

    acc = make_accelerator("fp32")
    torch.manual_seed(0)
    model = build(Path(args.backbone), args.strategy, "cpu", None)
    batches = [synthetic_batch(model, args.batch, 100 * acc.process_index + s) for s in range(2)]
    if args.mode == "fsdp":
        model = shard_model(model, acc)
    else:
        probe_participation(model, {"robot": synthetic_batch(model, 1, 999)}, acc.autocast)
        model = wrap_ddp(acc, model, args.mode == "ddp_find_unused")
    opt = build_optimizer(model, OptimConfig())
    model.train()

    def step(b):
        out = model(b)
        global_objective(acc, out["terms"]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(3):
        step(batches[i % 2])
    acc.wait_for_everyone()
    t = time.perf_counter()
    for i in range(args.steps):
        step(batches[i % 2])
    acc.wait_for_everyone()
    dt = time.perf_counter() - t
    if acc.is_main_process:
        Path(args.scaling_out).write_text(json.dumps({
            "samples_per_s": args.steps * args.batch * acc.num_processes / dt, "step_ms": 1000 * dt / args.steps,
            "processes": acc.num_processes, "per_process_batch": args.batch}))


def scaling(args) -> dict:
    """Launch each SCALING row with torchrun and collect the workers' timings."""
    import os
    import shutil

    from vla_robot.models.tiny import make_tiny_backbone

    tmp = Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    backbone = make_tiny_backbone("paligemma", tmp / "tiny", image_size=32)
    runs: dict[str, list[dict]] = {}
    for rep in range(args.repeat):  # interleaved repeats: a load spike on the shared machine hits one run, not a row
        for label, strategy, procs, mode in SCALING:
            result = _scaling_run(args, backbone, tmp, label, strategy, procs, mode)
            runs.setdefault(label, []).append(result)
            print(f"[{rep + 1}/{args.repeat}] {label}: " + (f"{result['samples_per_s']:.1f} samples/s"
                                                         if "samples_per_s" in result else "failed"), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    rows = {}
    for label, strategy, procs, mode in SCALING:
        ok = sorted((r for r in runs[label] if "samples_per_s" in r), key=lambda r: r["samples_per_s"])
        if not ok:
            rows[label] = runs[label][-1]
            continue
        median = ok[len(ok) // 2]
        rows[label] = {**median, "strategy": strategy, "mode": mode,
                       "samples_per_s_runs": [round(r["samples_per_s"], 1) for r in runs[label] if "samples_per_s" in r]}
        base = rows.get(f"{strategy} 1 proc", {}).get("samples_per_s")
        if base:
            rows[label]["efficiency"] = rows[label]["samples_per_s"] / (procs * base)
    print(f"\n{'run (median of ' + str(args.repeat) + ')':<30}{'samples/s':>11}{'step ms':>10}{'efficiency':>12}")
    for label, r in rows.items():
        if "samples_per_s" not in r:
            print(f"{label:<30} failed")
            continue
        print(f"{label:<30}{r['samples_per_s']:>11.1f}{r['step_ms']:>10.1f}{r.get('efficiency', float('nan')):>12.2f}")
    return {"device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(), "steps": args.steps,
            "per_process_batch": args.batch, "repeats": args.repeat, "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "rows": rows,
            "note": "weak scaling (fixed per-process batch); OMP_NUM_THREADS=1 per process; tiny PaliGemma; "
                    "median of interleaved repeats"}


def _scaling_run(args, backbone: Path, tmp: Path, label: str, strategy: str, procs: int, mode: str) -> dict:
    import os
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp / f"{label.replace(' ', '_')}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port", str(port),
           str(Path(__file__).resolve()), "--scaling-worker", "--backbone", str(backbone), "--strategy", strategy,
           "--mode", mode, "--steps", str(args.steps), "--batch", str(args.batch), "--scaling-out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
        return {"failed": proc.stderr[-500:]}
    return json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", default="tiny", choices=["tiny", "3b"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers for the loader measurement")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/bench_train.json, "
                   "bench_train_scaling.json with --scaling)")
    p.add_argument("--scaling", action="store_true", help="1 vs 2 processes: samples/s and efficiency")
    p.add_argument("--repeat", type=int, default=3, help="scaling: interleaved repeats per row (median reported)")
    p.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backbone", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="lora", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="ddp", help=argparse.SUPPRESS)
    p.add_argument("--scaling-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scaling_worker:
        scaling_worker(args)
        return 0
    if args.scaling:
        result = scaling(args)
        out = Path(args.out or ROOT / "bench" / "results" / "bench_train_scaling.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
        return 0
    args.out = args.out or str(ROOT / "bench" / "results" / "bench_train.json")
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    dtype = torch.bfloat16 if args.size == "3b" else None
    if args.size == "3b":
        if args.device != "cuda" or not torch.cuda.is_available():
            p.error("--size 3b needs --device cuda and a GPU")
        backbone = paligemma_3b(tmp)
    else:
        from vla_robot.models.tiny import make_tiny_backbone

        backbone = make_tiny_backbone("paligemma", tmp / "tiny", image_size=32)
    rows = {}
    for strategy in STRATEGIES:
        torch.manual_seed(0)
        try:
            model = build(backbone, strategy, args.device, dtype)
            batches = [synthetic_batch(model, args.batch, s) for s in range(2)]
            rows[strategy] = time_steps(model, batches, args.steps, args.device, dtype)
        except (ImportError, torch.OutOfMemoryError) as exc:
            print(f"{strategy}: skipped ({type(exc).__name__}: {str(exc)[:120]})")
            rows[strategy] = {"skipped": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        finally:
            model = batches = None
            gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
    base = rows["full"].get("samples_per_s")
    for r in rows.values():
        if "samples_per_s" in r:
            r["vs_full"] = r["samples_per_s"] / base if base else float("nan")
    result = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "size": args.size,
              "peak_mem_kind": "torch.cuda.max_memory_allocated per strategy" if args.device == "cuda"
              else "process max RSS, cumulative over the strategies run so far",
              "batch": args.batch, "steps": args.steps, "torch": torch.__version__, "strategies": rows}
    if args.size == "tiny":
        from vla_robot.data.store import EpisodeStore
        from vla_robot.data.synthetic import demo_schema, write_demo_episodes

        store = EpisodeStore.create(str(tmp / "bench.zarr"), demo_schema(width=64, height=64, cameras=("front",),
                                                                          depth=False))
        write_demo_episodes(store, [40] * 6)
        store.close()
        model = build(backbone, "lora", "cpu", None)
        rate = loader_rate(str(tmp / "bench.zarr"), model, args.batch, 10, args.workers)
        step_rate = rows["lora"]["samples_per_s"]
        result["loader"] = {"samples_per_s": rate, "workers": args.workers, "vs_lora_step": rate / step_rate}
        print(f"loader: {rate:.1f} samples/s with {args.workers} worker(s) = {rate / step_rate:.1f}x the lora "
              f"train-step rate ({step_rate:.1f} samples/s); target >= 3x")
    print(f"{'strategy':<15}{'samples/s':>11}{'step ms':>10}{'peak MiB':>10}{'trainable':>14}{'vs full':>9}")
    for name, r in rows.items():
        if "skipped" in r:
            print(f"{name:<15} skipped: {r['skipped']}")
            continue
        print(f"{name:<15}{r['samples_per_s']:>11.1f}{r['step_ms']:>10.1f}{r['peak_mem_mib']:>10.0f}"
              f"{r['trainable']:>14,}{r['vs_full']:>9.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
