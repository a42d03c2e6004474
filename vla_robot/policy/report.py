"""Evaluation outputs: a JSON report, an MP4 per sampled rollout and a summary PNG.

The JSON is the source of truth (the demo report reads its numbers from it); the PNG
and videos are for people.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vla_robot.policy.evaluation import episode_stats


def summarise_split(records: list[dict]) -> dict:
    from sim import summarise

    out = summarise(records)
    out.update(episode_stats(records))
    events: dict[str, int] = {}
    for r in records:
        for k, v in r.get("safety_events", {}).items():
            events[k] = events.get(k, 0) + int(v)
    out["safety_events"] = events
    return out


def build_report(records: list[dict], runtime_report: dict, meta: dict) -> dict:
    splits = sorted({r["split"] for r in records})
    episodes = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
    return {
        **meta,
        "metrics": {s: summarise_split([r for r in records if r["split"] == s]) for s in splits},
        "runtime": runtime_report,
        "episodes": episodes,
    }


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_outputs(report: dict, records: list[dict], out_dir: str | Path, fps: float = 10.0) -> dict[str, Path]:
    """Write report.json, videos/*.mp4 and summary.png under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    videos = []
    for r in records:
        frames = r.get("_frames")
        if not frames:
            continue
        tag = "success" if r["success"] else "failure"
        path = out / "videos" / f"{r['split']}_ep{r['episode']:03d}_{tag}.mp4"
        write_mp4(path, frames, fps)
        videos.append(str(path.relative_to(out)))
    report = dict(report, videos=videos)
    paths["report"] = out / "report.json"
    paths["report"].write_text(json.dumps(_clean(report), indent=2))
    paths["summary"] = out / "summary.png"
    summary_png(report, paths["summary"])
    return paths


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                            ffmpeg_log_level="error") as writer:
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))


def summary_png(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report["metrics"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names, keys = ["Exe. SR", "Rec. SR", "SR"], ["exe_sr", "rec_sr", "sr"]
    width = 0.8 / max(len(metrics), 1)
    for i, (split, m) in enumerate(metrics.items()):
        vals = [0.0 if m[k] is None or (isinstance(m[k], float) and math.isnan(m[k])) else m[k] for k in keys]
        xs = np.arange(3) + i * width
        axes[0].bar(xs, vals, width, label=f"{split} (n={m['episodes']})")
        for x, v in zip(xs, vals):
            axes[0].text(x, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    axes[0].set_xticks(np.arange(3) + width * (len(metrics) - 1) / 2, names)
    axes[0].set_ylim(0, 1.15)
    axes[0].set_title(f"GrinningFace ({report.get('mode', '')})")
    axes[0].legend(fontsize=8)
    for split in metrics:
        lengths = [e["steps"] for e in report["episodes"] if e["split"] == split]
        axes[1].hist(lengths, bins=15, alpha=0.6, label=split)
    axes[1].set_title("episode length (steps)")
    axes[1].legend(fontsize=8)
    events = {}
    for m in metrics.values():
        for k, v in m["safety_events"].items():
            events[k] = events.get(k, 0) + v
    if events:
        axes[2].barh(list(events), list(events.values()), color="tab:red")
    axes[2].set_title("safety events (all episodes)")
    fig.suptitle(str(report.get("policy", {}).get("kind", "policy")) + " - " + str(report.get("policy", {}).get("path", "")),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
