"""Policy runtime benchmark: per-stage step latency, eager vs CUDA-graph head, control-loop jitter.

    python bench/bench_policy.py                         # CPU: tiny PaliGemma + twin loop jitter (< 2 min)
    python bench/bench_policy.py --device cuda           # + PaliGemma-3B-sized random bf16, graph vs eager
    python bench/bench_policy.py --device cuda --no-compile   # skip the torch.compile'd VLM variant

Sections (each a same-run comparison against a named baseline):
  head      the action head (proprio projection + MLP + de-normalisation) at a real-size width;
            baseline: eager; candidate: CUDA-graph replay (CUDA only)
  step      one policy step per stage (preprocess, vlm, head, total); baseline: eager head
  compile   VLM forward with a fixed prompt bucket through torch.compile (CUDA only); baseline: eager VLM
  jitter    control-loop period jitter in the twin at 10 and 30 Hz; baseline: synchronous inference,
            candidate: asynchronous (needs mujoco; skipped where it is not installed)
The cuda path imports only torch + transformers (no zarr/mujoco/rclpy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

STATS7 = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [0.0] * 7, "max": [1.0] * 7},
          "state": {"mean": [0.0] * 7, "std": [1.0] * 7}}


def pct(values_s, q) -> float:
    return float(np.percentile(np.asarray(values_s) * 1e3, q))


def stats_ms(values_s) -> dict:
    return {"p50_ms": pct(values_s, 50), "p99_ms": pct(values_s, 99), "jitter_ms": pct(values_s, 99) - pct(values_s, 50),
            "mean_ms": float(np.mean(values_s) * 1e3), "n": len(values_s)}


def device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


def time_fn(fn, steps: int, cuda: bool, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- head
def bench_head(device: str, steps: int) -> dict:
    from vla_robot.models.head import ActionDecoder, ActionHead
    from vla_robot.models.normalization import Normalizer
    from vla_robot.policy.cuda_graph import CudaGraphRunner

    hidden, queries = 2048, 8  # Gemma-2B width, 8 action queries, chunk 10 x 7
    head = ActionHead(hidden, queries, 10, 7, 7, head_hidden=1024, head_layers=3)
    dec = ActionDecoder(head, Normalizer(STATS7, 7, 7, gripper_dims=(6,))).to(device).eval()
    h = torch.randn(1, queries, hidden, device=device, dtype=torch.bfloat16)
    s = torch.randn(1, 7, device=device)
    cuda = device == "cuda"
    eager = CudaGraphRunner(dec, enabled=False)
    res = {"config": "hidden 2048, 8 queries, proprio 7, MLP 3x1024, chunk 10x7, batch 1",
           "eager": stats_ms(time_fn(lambda: eager(h, s).cpu(), steps, cuda))}
    if cuda:
        graph = CudaGraphRunner(dec, enabled=True)
        res["graph"] = stats_ms(time_fn(lambda: graph(h, s).cpu(), steps, cuda))
        res["graph_speedup_p50"] = res["eager"]["p50_ms"] / res["graph"]["p50_ms"]
        torch.testing.assert_close(graph(h, s), eager(h, s), rtol=1e-5, atol=1e-5)
        res["graph_equals_eager"] = True
    return res


# ----------------------------------------------------------------------------- full step
def tiny_model(tmp: Path, device: str):
    from vla_robot.models.bundle import BundleInfo
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.tiny import make_tiny_backbone
    from vla_robot.models.vla import VLAModel

    backbone = make_tiny_backbone("paligemma", tmp / "tiny", image_size=64, hidden_size=64, num_layers=2)
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=10, state_dim=7,
                    cameras=("third_person",), image_size=64, gripper_dims=(6,), head_hidden=256)
    model = VLAModel.from_pretrained_backbone(cfg, STATS7).to(device).eval()
    return model, BundleInfo(path=tmp, config=cfg, cameras=cfg.cameras, image_size=64, state_dim=7, action_dim=7,
                             horizon=10, action_space={"type": "joint_position"}, weights="merged", stats=STATS7)


def big_model(tmp: Path):
    from bench_train import paligemma_3b  # the training bench's PaliGemma-3B-sized random checkpoint
    from vla_robot.models.bundle import BundleInfo
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.vla import VLAModel

    backbone = paligemma_3b(tmp)
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=10, state_dim=7,
                    cameras=("third_person",), image_size=224, gripper_dims=(6,), head_hidden=1024, head_layers=3)
    model = VLAModel.from_pretrained_backbone(cfg, STATS7, dtype=torch.bfloat16).to("cuda").eval()
    return model, BundleInfo(path=tmp, config=cfg, cameras=cfg.cameras, image_size=224, state_dim=7, action_dim=7,
                             horizon=10, action_space={"type": "joint_position"}, weights="merged", stats=STATS7)


def bench_step(model, info, device: str, dtype: str, steps: int, compiled: bool = False) -> dict:
    """Per-stage latency of ``VLAPolicy.infer`` (640x480 camera frame in, chunk on the host out).

    Modes, all in this run: eager head (baseline), CUDA-graph head, and (``compiled``) CUDA-graph
    head + VLM compiled with reduce-overhead on a 32-token prompt bucket (last: it compiles the model).
    """
    from vla_robot.policy.config import RuntimeConfig
    from vla_robot.policy.types import Observation
    from vla_robot.policy.vla_policy import VLAPolicy

    rng = np.random.default_rng(0)
    obs = Observation({"third_person": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)}, rng.normal(size=7),
                      "put the cube on the grinning face")
    out = {"params": sum(p.numel() for p in model.parameters()), "camera": "640x480 RGB -> model size"}
    modes = {"eager_head": {"cuda_graph": "off"}}
    if device == "cuda":
        modes["graph_head"] = {"cuda_graph": "on"}
        if compiled:
            modes["graph_head_vlm_compiled"] = {"cuda_graph": "on", "vlm_compile": "reduce-overhead", "prompt_bucket": 32}
    for name, extra in modes.items():
        t0 = time.perf_counter()
        pol = VLAPolicy(model, info, RuntimeConfig(device=device, dtype=dtype, **extra))
        for _ in range(3):
            pol.infer(obs)
        warm_s = time.perf_counter() - t0
        per_stage: dict[str, list[float]] = {}
        for _ in range(steps):
            _, t = pol.infer(obs)
            for k, v in t.items():
                per_stage.setdefault(k, []).append(v)
        out[name] = {k: stats_ms(v) for k, v in per_stage.items()}
        out[name]["warmup_s"] = warm_s
    if device == "cuda":
        e, g = out["eager_head"], out["graph_head"]
        out["head_speedup_p50"] = e["head"]["p50_ms"] / g["head"]["p50_ms"]
        out["total_speedup_p50"] = e["total"]["p50_ms"] / g["total"]["p50_ms"]
        if "graph_head_vlm_compiled" in out:
            c = out["graph_head_vlm_compiled"]
            out["vlm_compiled_speedup_p50"] = e["vlm"]["p50_ms"] / c["vlm"]["p50_ms"]
            out["compiled_total_speedup_p50"] = e["total"]["p50_ms"] / c["total"]["p50_ms"]
    return out


def bench_compile(model, info, steps: int) -> dict:
    """VLM forward with a fixed prompt bucket (same instruction length every step) via torch.compile."""
    from vla_robot.models.vla import unwrap

    rng = np.random.default_rng(0)
    images = {"third_person": torch.from_numpy(rng.integers(0, 256, (1, 3, 224, 224), dtype=np.uint8))}
    inputs = model.preprocess(images, ["put the cube on the grinning face"])
    res = {"bucket_tokens": int(inputs["input_ids"].shape[1]) + info.config.num_action_queries}
    with torch.inference_mode():
        eager = time_fn(lambda: model.encode_inputs(inputs), steps, True)
        ref = model.encode_inputs(inputs).float()
    res["eager"] = stats_ms(eager)
    backbone = unwrap(model.backbone)
    inner = backbone.model
    for mode in ("default", "reduce-overhead"):
        try:
            backbone.model = torch.compile(inner, mode=mode, dynamic=False)
            t0 = time.perf_counter()
            with torch.inference_mode():
                for _ in range(3):
                    model.encode_inputs(inputs)
                torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                got = model.encode_inputs(inputs).float()
                timed = time_fn(lambda: model.encode_inputs(inputs), steps, True, warmup=2)
            res[mode] = {**stats_ms(timed), "compile_s": compile_s,
                         "max_abs_diff_vs_eager": float((got - ref).abs().max()),
                         "speedup_p50": res["eager"]["p50_ms"] / pct(timed, 50)}
        except Exception as exc:  # report, do not hide: compile support varies by model and version
            res[mode] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            backbone.model = inner
            torch._dynamo.reset()
    return res


# ----------------------------------------------------------------------------- loop jitter in the twin
class Slowed:
    """A real policy plus a fixed extra inference time, standing in for a bigger VLM on this CPU."""

    def __init__(self, policy, extra_s: float) -> None:
        self.policy, self.extra_s = policy, extra_s
        for k in ("chunk_size", "action_dim", "action_space", "camera_names", "robot"):
            setattr(self, k, getattr(policy, k))

    def reset(self, instruction, episode=None):
        self.policy.reset(instruction, episode)

    def describe(self):
        return {**self.policy.describe(), "extra_inference_s": self.extra_s}

    def infer(self, obs):
        t0 = time.perf_counter()
        chunk, t = self.policy.infer(obs)
        time.sleep(max(0.0, self.extra_s - (time.perf_counter() - t0)))
        return chunk, {**t, "total": time.perf_counter() - t0}


def bench_jitter(model, info, seconds: float, inference_ms: float) -> dict:
    try:
        from sim import Twin, TwinCamera, TwinConfig, TwinRobot
    except ImportError as exc:
        return {"skipped": f"twin unavailable: {exc}"}
    from vla_robot.policy.config import ChunkConfig, RuntimeConfig, SafetyConfig
    from vla_robot.policy.loop import ControlLoop
    from vla_robot.policy.vla_policy import VLAPolicy

    base = VLAPolicy(model, info, RuntimeConfig())
    policy = Slowed(base, inference_ms / 1e3)
    out = {"policy": f"tiny PaliGemma (CPU) padded to {inference_ms:.0f} ms per inference", "seconds": seconds}
    for hz in (10.0, 30.0):
        twin = Twin(TwinConfig(cameras=("third_person",), image_size=(224, 224), control_rate_hz=hz, seed=0))
        try:
            for asynchronous in (False, True):
                robot, cam = TwinRobot(twin), TwinCamera(twin, "third_person")
                robot.connect()
                cam.connect()
                rt = RuntimeConfig(control_hz=hz, asynchronous=asynchronous, chunk=ChunkConfig(request_threshold=0.5),
                                   safety=SafetyConfig(max_inference_stall_s=5.0, max_obs_age_s=5.0))
                loop = ControlLoop(robot, {"third_person": cam}, policy, rt, pace=True)
                try:
                    twin.reset(0)
                    loop.start_episode(twin.episode.instruction)
                    loop.warmup()
                    loop.run(int(seconds * hz))
                    rep = loop.report()
                finally:
                    loop.close()
                period = loop.latency.values("period")
                out[f"{hz:.0f}Hz_{'async' if asynchronous else 'sync'}"] = {
                    "period_p50_ms": pct(period, 50), "period_p99_ms": pct(period, 99),
                    "jitter_p99_ms": rep["period_jitter_ms"]["p99"], "missed_ticks": rep["loop"]["missed_ticks"],
                    "stale_actions_skipped": rep["scheduler"]["stale_actions_skipped"],
                    "holds": rep["safety"]["hold"], "end_to_end_p50_ms": rep["latency_ms"].get("end_to_end", {}).get("p50_ms"),
                }
            s, a = out[f"{hz:.0f}Hz_sync"], out[f"{hz:.0f}Hz_async"]
            out[f"{hz:.0f}Hz_jitter_ratio_sync_over_async"] = s["jitter_p99_ms"] / max(a["jitter_p99_ms"], 1e-3)
        finally:
            twin.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 30 cpu / 200 cuda)")
    p.add_argument("--jitter-seconds", type=float, default=4.0, help="wall seconds per jitter run")
    p.add_argument("--inference-ms", type=float, default=60.0, help="jitter section: inference time per chunk")
    p.add_argument("--no-compile", action="store_true", help="cuda: skip the torch.compile'd VLM")
    p.add_argument("--no-runtime-compile", action="store_true", help="cuda: skip the compiled-VLM runtime mode")
    p.add_argument("--no-3b", action="store_true", help="cuda: skip the PaliGemma-3B-sized model")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    steps = args.steps or (200 if device == "cuda" else 30)
    results: dict = {"device": device_name(device), "steps": steps, "load_avg_1min": os.getloadavg()[0]}
    t0 = time.perf_counter()
    results["head"] = bench_head(device, steps * (5 if device == "cuda" else 3))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, info = tiny_model(tmp, device)
        results["step_tiny"] = bench_step(model, info, device, "float32", steps)
        if device == "cpu":
            results["jitter"] = bench_jitter(model, info, args.jitter_seconds, args.inference_ms)
        del model
        if device == "cuda" and not args.no_3b:
            model, info = big_model(tmp)
            if not args.no_compile:  # raw encode first: the runtime mode below compiles the model in place
                results["compile_3b_vlm"] = bench_compile(model, info, max(20, steps // 4))
            results["step_3b_bf16"] = bench_step(model, info, device, "bfloat16", steps,
                                                 compiled=not args.no_runtime_compile)
    results["wall_s"] = time.perf_counter() - t0
    out = Path(args.out or ROOT / "bench" / "results" / f"bench_policy_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nwrote {out}")
    return 0


def print_table(r: dict) -> None:
    print(f"device: {r['device']}")
    h = r["head"]
    line = f"head ({h['config']}): eager p50 {h['eager']['p50_ms']:.3f} / p99 {h['eager']['p99_ms']:.3f} ms"
    if "graph" in h:
        line += (f"; graph p50 {h['graph']['p50_ms']:.3f} / p99 {h['graph']['p99_ms']:.3f} ms; "
                 f"speed-up x{h['graph_speedup_p50']:.2f}; jitter(p99-p50) {h['eager']['jitter_ms']:.3f} -> {h['graph']['jitter_ms']:.3f} ms")
    print(line)
    for key in ("step_tiny", "step_3b_bf16"):
        if key not in r:
            continue
        print(f"\n{key} ({r[key]['params'] / 1e6:.1f} M params)   stage: p50 / p99 ms")
        for mode in ("eager_head", "graph_head", "graph_head_vlm_compiled"):
            if mode in r[key]:
                row = "  ".join(f"{k} {v['p50_ms']:.2f}/{v['p99_ms']:.2f}" for k, v in r[key][mode].items()
                                if isinstance(v, dict))
                print(f"  {mode:24s} {row}")
        if "head_speedup_p50" in r[key]:
            print(f"  head speed-up x{r[key]['head_speedup_p50']:.2f}, step speed-up x{r[key]['total_speedup_p50']:.3f}")
        if "compiled_total_speedup_p50" in r[key]:
            print(f"  compiled VLM: vlm x{r[key]['vlm_compiled_speedup_p50']:.2f}, "
                  f"step x{r[key]['compiled_total_speedup_p50']:.2f} vs eager")
    if "compile_3b_vlm" in r:
        c = r["compile_3b_vlm"]
        print(f"\nVLM forward, fixed bucket of {c['bucket_tokens']} tokens: eager p50 {c['eager']['p50_ms']:.2f} ms")
        for mode in ("default", "reduce-overhead"):
            v = c.get(mode, {})
            print(f"  {mode}: " + (v["error"] if "error" in v else
                  f"p50 {v['p50_ms']:.2f} / p99 {v['p99_ms']:.2f} ms, x{v['speedup_p50']:.2f}, compile {v['compile_s']:.0f} s, "
                  f"max |diff| {v['max_abs_diff_vs_eager']:.3g}"))
    if "jitter" in r and "skipped" not in r["jitter"]:
        j = r["jitter"]
        print(f"\ncontrol-loop period in the twin ({j['policy']}):")
        for hz in ("10", "30"):
            for mode in ("sync", "async"):
                v = j[f"{hz}Hz_{mode}"]
                print(f"  {hz} Hz {mode:5s}: period p50 {v['period_p50_ms']:.1f} / p99 {v['period_p99_ms']:.1f} ms, "
                      f"jitter p99 {v['jitter_p99_ms']:.1f} ms, missed ticks {v['missed_ticks']}, "
                      f"stale skipped {v['stale_actions_skipped']}")
            print(f"  {hz} Hz jitter ratio sync/async: x{j[f'{hz}Hz_jitter_ratio_sync_over_async']:.1f}")


if __name__ == "__main__":
    sys.exit(main())
