"""Write benchmark: two 640x480 RGB cameras + one 640x480 depth + joints at 30 Hz, on one core.

Reports sustained frames/s as a multiple of real time (target >= 3x), bytes per minute of
recording and CPU % while recording at the real-time rate. Baseline measured in the same
run: the same frames into the same layout with no codec (raw bytes, zarr v3 'bytes').

    python bench/bench_store_write.py            # ~30 s
    python bench/bench_store_write.py --full     # 30 s of recording, 10 s paced
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_robot.data import CameraSpec, EpisodeStore, StoreSchema

RATE = 30.0


def camera_frames(n: int, h: int = 480, w: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scene-like frames: smooth shading, a moving blob, sensor noise (not flat colour, not pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb, depth = [], []
    for t in range(n):
        cx, cy = w / 2 + 150 * np.sin(t / 10), h / 2 + 80 * np.cos(t / 13)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 40.0**2))
        base = np.stack([90 + 60 * xx / w, 110 + 50 * yy / h, 140 - 40 * xx / w], -1) + 100 * blob[..., None]
        img = base + rng.normal(0, 3, (h, w, 3))
        rgb.append(np.clip(img, 0, 255).astype(np.uint8))
        d = 800 + 200 * yy / h - 150 * blob + rng.normal(0, 2, (h, w))
        depth.append(d.astype(np.uint16))
    return np.stack(rgb), np.stack(depth)


def schema(encoding: str, quality: int, depth_encoding: str) -> StoreSchema:
    cams = [
        CameraSpec(
            "front",
            640,
            480,
            {"fx": 600.0, "fy": 600.0, "cx": 320.0, "cy": 240.0},
            encoding,
            quality,
            depth=True,
            depth_encoding=depth_encoding,
        ),
        CameraSpec("wrist", 640, 480, None, encoding, quality),
    ]
    joints = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
    return StoreSchema("widowx250", joints, RATE, {"type": "joint_position"}, cams, 7, 7)


def step(rgb: np.ndarray, depth: np.ndarray, t: int) -> dict:
    k = t % len(rgb)
    now = time.time()
    return {
        "state": np.full(7, t * 1e-3, np.float32),
        "action": np.full(7, t * 1e-3, np.float32),
        "images": {"front": rgb[k], "wrist": rgb[(k + 7) % len(rgb)]},
        "depth": {"front": depth[k]},
        "stamp": t / RATE,
        "receive_stamp": now,
    }


def run(store_url: str, sch: StoreSchema, rgb, depth, frames: int, paced_s: float, raw: bool = False) -> dict:
    store = EpisodeStore.create(store_url, sch, overwrite=True)
    if raw:  # baseline: replace image/depth arrays by codec-free ones with the same chunks and shards
        from zarr.codecs import BytesCodec

        g = store._group
        for key in ("data/images/front", "data/images/wrist", "data/depth/front"):
            a = g[key]
            del g[key]
            g.create_array(
                key,
                shape=a.shape,
                chunks=a.chunks,
                shards=a.shards,
                dtype=a.dtype,
                serializer=BytesCodec(),
                compressors=None,
                fill_value=0,
            )
        store._arrays.clear()
    ep = store.begin_episode("benchmark")
    c0, w0 = time.process_time(), time.perf_counter()
    for t in range(frames):
        ep.append(step(rgb, depth, t))
    ep.commit(success=True)
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    size = store.nbytes_stored()
    result = {
        "x_realtime_cpu": 1.0 / (cpu / frames) / RATE,
        "frames": frames,
        "wall_s": wall,
        "fps": frames / wall,
        "x_realtime": frames / wall / RATE,
        "cpu_s_per_frame": cpu / frames,
        "bytes_per_min": size / (frames / RATE) * 60,
    }
    for background in (True, False) if paced_s > 0 else ():
        # A recorder's loop at 30 Hz: how much CPU, and how long does one append() block it?
        ep = store.begin_episode("paced", background=background)
        c0, w0 = time.process_time(), time.perf_counter()
        n = int(paced_s * RATE)
        blocked = []
        for t in range(n):
            target = w0 + t / RATE
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            a0 = time.perf_counter()
            ep.append(step(rgb, depth, t))
            blocked.append(time.perf_counter() - a0)
        ep.commit(success=True)
        wall = time.perf_counter() - w0
        tag = "" if background else "_inline"
        result[f"cpu_percent_at_realtime{tag}"] = 100 * (time.process_time() - c0) / wall
        result[f"append_ms_p99{tag}"] = 1e3 * float(np.quantile(blocked, 0.99))
        result[f"append_ms_max{tag}"] = 1e3 * max(blocked)
    store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="900 frames (30 s) + 10 s paced")
    parser.add_argument("--encoding", default="jpeg", choices=("jpeg", "jpegxl", "png"))
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--depth-encoding", default="zstd", choices=("zstd", "png"))
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (one core, per the target)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "store_write.json"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    frames, paced = (900, 10.0) if args.full else (150, 3.0)
    rgb, depth = camera_frames(30)
    tmp = Path(tempfile.mkdtemp(prefix="vla-bench-write-"))
    try:
        ours = run(
            str(tmp / "ours.zarr"), schema(args.encoding, args.quality, args.depth_encoding), rgb, depth, frames, paced
        )
        raw = run(
            str(tmp / "raw.zarr"),
            schema(args.encoding, args.quality, args.depth_encoding),
            rgb,
            depth,
            frames,
            0.0,
            raw=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"write benchmark: 2x640x480 RGB ({args.encoding} q{args.quality}) + 640x480 depth ({args.depth_encoding})"
        f" + joints @30 Hz, pinned to core {args.core}, {frames} frames (load average {load:.1f})"
    )
    header = f"{'variant':<30}{'frames/s':>10}{'x RT wall':>11}{'x RT cpu':>10}{'MB/min':>10}{'CPU% @30Hz':>12}"
    print(header)
    for name, r in ((f"vla store ({args.encoding})", ours), ("baseline: raw zarr, no codec", raw)):
        cpu_pct = f"{r['cpu_percent_at_realtime']:.1f}" if "cpu_percent_at_realtime" in r else "-"
        print(
            f"{name:<30}{r['fps']:>10.1f}{r['x_realtime']:>11.2f}{r['x_realtime_cpu']:>10.2f}"
            f"{r['bytes_per_min'] / 1e6:>10.1f}{cpu_pct:>12}"
        )
    print("x RT wall: frames/s / 30 on this (shared) machine; x RT cpu: 1 / (CPU seconds per frame) / 30")
    print(
        f"append() blocking at 30 Hz: background writer p99 {ours['append_ms_p99']:.1f} ms / max {ours['append_ms_max']:.1f} ms;"
        f" inline writer p99 {ours['append_ms_p99_inline']:.1f} ms / max {ours['append_ms_max_inline']:.1f} ms"
        f" (CPU {ours['cpu_percent_at_realtime_inline']:.1f}%)"
    )
    print(
        f"ratios vs raw: wall speed {ours['fps'] / raw['fps']:.2f}x, "
        f"size {raw['bytes_per_min'] / ours['bytes_per_min']:.1f}x smaller"
    )
    out = {
        "config": vars(args),
        "load_average": load,
        "ours": ours,
        "baseline_raw_zarr": raw,
        "speed_ratio_vs_raw": ours["fps"] / raw["fps"],
        "size_ratio_raw_over_ours": raw["bytes_per_min"] / ours["bytes_per_min"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
