"""Read benchmark: training samples/s of VLADataset (two 224x224 cameras, H=10, batch 32, 2 workers).

Baseline in the same run, on the same episodes exported with `to-lerobot`:
  * with LEROBOT_PYTHON=/path/to/lerobot-venv/bin/python: lerobot's own LeRobotDataset
    (video-decoded with torchcodec, lerobot's default backend; delta_timestamps for the 10-step action chunk);
  * otherwise (clearly labelled): a minimal MP4 reader that decodes the exported video
    frame at random access with imageio/ffmpeg.

    python bench/bench_store_read.py                 # ~1 min
    python bench/bench_store_read.py --batches 100   # longer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))
from bench_store_write import camera_frames  # noqa: E402

from vla_robot.data import CameraSpec, EpisodeStore, StoreSchema, VLADataset, collate  # noqa: E402
from vla_robot.data.lerobot_io import to_lerobot  # noqa: E402

HORIZON, BATCH, WORKERS, RATE = 10, 32, 2, 30.0

LEROBOT_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    root, batches, horizon, batch, workers, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    ds = LeRobotDataset("local/bench", root=root, video_backend=backend,
                        delta_timestamps={"action": [k / 30.0 for k in range(horizon)]})
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0), persistent_workers=True)
    it = iter(loader)
    b = next(it)  # warm-up: worker start, first decode
    assert b["action"].shape[1:] == (horizon, 7), b["action"].shape
    t0 = time.perf_counter(); n = 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader); b = next(it)
        n += len(b["index"])
    dt = time.perf_counter() - t0
    print(json.dumps({"samples": n, "seconds": dt, "samples_per_s": n / dt}))
    """
)


class Mp4FrameDataset(Dataset):
    """Fallback baseline: random-access decode of the exported MP4s (imageio/ffmpeg), actions from parquet."""

    def __init__(self, root: Path, store: EpisodeStore) -> None:
        self.root, self.refs = root, []
        for e in range(store.num_episodes):
            n = store.episode_length(e)
            self.refs += [(e, t, n) for t in range(n)]
        self.actions = [store.read("action", e) for e in range(store.num_episodes)]
        self.cams = store.schema.camera_names

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> dict:
        import imageio.v3 as iio

        e, t, n = self.refs[i]
        images = {}
        for cam in self.cams:
            path = self.root / f"videos/observation.images.{cam}/chunk-000/file-{e:03d}.mp4"
            images[cam] = torch.from_numpy(iio.imread(path, index=t, plugin="FFMPEG")).permute(2, 0, 1)
        steps = np.minimum(np.arange(t, t + HORIZON), n - 1)
        return {"images": images, "action": torch.from_numpy(self.actions[e][steps])}


def measure(loader: DataLoader, batches: int) -> dict:
    it = iter(loader)
    next(it)  # warm-up
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += b["action"].shape[0]
    dt = time.perf_counter() - t0
    return {"samples": n, "seconds": dt, "samples_per_s": n / dt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--lerobot-backend", default="torchcodec", help="lerobot video_backend (pyav or torchcodec)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "store_read.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vla-bench-read-"))
    try:
        cams = [CameraSpec(n, 224, 224, None, "jpeg", 90) for n in ("front", "wrist")]
        joints = tuple(f"j{i}" for i in range(7))
        schema = StoreSchema("widowx250", joints, RATE, {"type": "joint_position"}, cams, 7, 7)
        store = EpisodeStore.create(tmp / "bench.zarr", schema)
        rgb, _ = camera_frames(args.length, 224, 224)
        for e in range(args.episodes):
            with store.begin_episode(f"task {e}") as ep:
                for t in range(args.length):
                    ep.append(
                        {
                            "state": np.full(7, t, np.float32),
                            "action": np.full(7, t, np.float32),
                            "images": {"front": rgb[t], "wrist": rgb[-1 - t]},
                            "stamp": t / RATE,
                            "receive_stamp": t / RATE,
                        }
                    )
                ep.commit(success=True)
        export = to_lerobot(store, tmp / "lerobot", progress=False)

        ds = VLADataset(
            str(tmp / "bench.zarr"), cameras=["front", "wrist"], image_size=(224, 224), horizon=HORIZON, split="all"
        )
        loader = DataLoader(
            ds,
            batch_size=BATCH,
            shuffle=True,
            num_workers=WORKERS,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0),
            persistent_workers=True,
        )
        ours = measure(loader, args.batches)

        python = os.environ.get("LEROBOT_PYTHON")
        if python:
            name = f"lerobot LeRobotDataset ({args.lerobot_backend})"
            proc = subprocess.run(
                [
                    python,
                    "-c",
                    LEROBOT_CHILD,
                    str(export),
                    str(args.batches),
                    str(HORIZON),
                    str(BATCH),
                    str(WORKERS),
                    args.lerobot_backend,
                ],
                capture_output=True,
                text=True,
                timeout=1200,
            )
            if proc.returncode != 0:
                raise SystemExit(f"lerobot baseline failed:\n{proc.stderr[-3000:]}")
            base = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            name = "MP4 random-access decode (imageio; lerobot not available)"
            base_loader = DataLoader(
                Mp4FrameDataset(export, store),
                batch_size=BATCH,
                shuffle=True,
                num_workers=WORKERS,
                generator=torch.Generator().manual_seed(0),
                persistent_workers=True,
            )
            base = measure(base_loader, max(2, args.batches // 5))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = ours["samples_per_s"] / base["samples_per_s"]
    print(
        f"read benchmark: {args.episodes}x{args.length} frames, 2x224x224 cams, H={HORIZON}, batch {BATCH}, {WORKERS} workers"
    )
    print(f"{'reader':<58}{'samples/s':>12}")
    print(f"{'VLADataset (zarr, JPEG q90 per frame)':<58}{ours['samples_per_s']:>12.1f}")
    print(f"{'baseline: ' + name:<58}{base['samples_per_s']:>12.1f}")
    print(f"ratio: {ratio:.2f}x")
    out = {"config": vars(args), "ours": ours, "baseline": {"name": name, **base}, "ratio": ratio}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
