"""Training throughput and peak memory per update strategy, and data-loader vs train-step rate.

    python bench/bench_train.py                       # tiny PaliGemma on CPU, real store (< 2 min)
    python bench/bench_train.py --device cuda --size 3b --steps 10   # PaliGemma-3B-sized random config, bf16

The cuda/3b mode needs only torch + transformers + peft (synthetic batches, no zarr/mujoco).
Baseline for the ratios: the `full` strategy measured in the same run.
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

    from training.data import MixtureBatchSampler, RobotCollator
    from vla_robot.data.dataset import VLADataset

    ds = VLADataset(store, cameras=["front"], image_size=(32, 32), horizon=4, split="all")
    sampler = MixtureBatchSampler([len(ds)], [1.0], batch, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=RobotCollator(model.preprocessor, True),
                        num_workers=workers)
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", default="tiny", choices=["tiny", "3b"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers for the loader measurement")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_train.json"))
    args = p.parse_args()
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
