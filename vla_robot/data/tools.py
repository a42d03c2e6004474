"""Store-level tools behind the ``vla-data`` CLI: summary, validation, copy, merge, split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from vla_robot.data.dataset import EpisodeRef, split_episodes
from vla_robot.data.errors import StoreError
from vla_robot.data.store import EpisodeStore


def summary(store: EpisodeStore) -> dict:
    """Counts, durations, cameras, size on disk and compression ratio."""
    schema = store.schema
    episodes = store.episode_indices()
    metas = [store.episode_meta(i) for i in episodes]
    durations = np.array([m.get("duration_s", 0.0) for m in metas]) if metas else np.zeros(0)
    frames = sum(store.episode_length(i) for i in episodes)
    per_frame = 4 * (schema.state_dim + schema.action_dim) + 16 * len(schema.streams())
    per_frame += sum(c.width * c.height * 3 + (c.width * c.height * 2 if c.depth else 0) for c in schema.cameras)
    stored = store.nbytes_stored()
    raw = per_frame * store.num_frames
    return {
        "url": store.url,
        "format_version": store.format_version,
        "robot": schema.robot,
        "control_rate_hz": schema.control_rate_hz,
        "episodes": len(episodes),
        "dropped_episodes": store.num_episodes - len(episodes),
        "frames": frames,
        "successes": int(sum(bool(m.get("success")) for m in metas)),
        "duration_total_s": float(durations.sum()),
        "duration_mean_s": float(durations.mean()) if len(durations) else 0.0,
        "duration_min_s": float(durations.min()) if len(durations) else 0.0,
        "duration_max_s": float(durations.max()) if len(durations) else 0.0,
        "cameras": [
            f"{c.name} {c.width}x{c.height} {c.encoding}"
            + (f" q{c.quality}" if c.encoding != "png" else "")
            + (f" +depth({c.depth_encoding})" if c.depth else "")
            for c in schema.cameras
        ],
        "instructions": sorted({m.get("instruction", "") for m in metas}),
        "bytes_on_disk": stored,
        "bytes_raw": raw,
        "compression_ratio": raw / stored if stored else 0.0,
    }


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(store: EpisodeStore, decode_images: bool = False, progress: bool = True) -> Report:
    """Check timestamps (monotonic, skew or unmarked gaps), step indices and holes, stream frame counts,
    NaNs and spec limits per episode. Marked holes are warnings, not problems: they are recorded facts."""
    report = Report()
    schema = store.schema
    period = 1.0 / schema.control_rate_hz
    for key in store.data_keys():
        length = store._array(f"data/{key}").shape[0]
        if length < store.num_frames:
            report.problems.append(f"data/{key}: {length} frames, but episodes need {store.num_frames}")
        elif length > store.num_frames:
            report.warnings.append(f"data/{key}: {length - store.num_frames} uncommitted frames past the last episode")
    limits = None
    try:
        from vla_robot.robots.specs import get_robot_spec

        spec = get_robot_spec(schema.robot)
        if spec.dof == schema.state_dim:
            limits = (spec.lower_array, spec.upper_array)
    except ValueError:
        pass
    for e in tqdm(store.episode_indices(), desc="validate", disable=not progress):
        where = f"episode {e}"
        try:
            ep = store.read_episode(e, keys=[k for k in store.data_keys() if not k.startswith(("images/", "depth/"))])
            n = store.episode_length(e)
            meta = store.episode_meta(e)
        except StoreError as exc:
            report.problems.append(str(exc))
            continue
        if meta.get("num_frames") not in (None, n):
            report.problems.append(f"{where}: metadata says {meta['num_frames']} frames, episode_ends say {n}")
        if n < 2:
            report.problems.append(f"{where}: only {n} frame(s)")
        for key in ("state", "action"):
            bad = ~np.isfinite(ep[key])
            if bad.any():
                report.problems.append(
                    f"{where}: {key} has {int(bad.sum())} NaN/inf values (first at step {int(np.argwhere(bad)[0][0])})"
                )
        steps = store.read("step_index", e)
        jumps = np.diff(steps)
        if steps[0] != 0 or (jumps < 1).any():
            report.problems.append(f"{where}: step_index must start at 0 and increase (got {steps[:3].tolist()}...)")
        holes = int((jumps - 1).clip(0).sum())
        if meta.get("hole_steps") not in (None, holes):
            report.problems.append(f"{where}: metadata says {meta['hole_steps']} hole steps, step_index shows {holes}")
        if holes:
            causes = sorted({s for h in meta.get("extra", {}).get("alignment", {}).get("holes", []) for s in h["streams"]})
            report.warnings.append(
                f"{where}: {holes} grid steps ({holes * period:.2f} s) missing in {int((jumps > 1).sum())} marked "
                f"hole(s){' (' + ', '.join(causes) + ')' if causes else ''}; training never crosses them"
            )
        limits_s = meta.get("extra", {}).get("alignment", {}).get("max_skew_s", {})
        for stream in schema.streams():
            stamps = ep[f"stamps/{stream}"]
            if len(stamps) != n:
                report.problems.append(f"{where}: stream {stream} has {len(stamps)} timestamps for {n} frames")
                continue
            for col, name in ((0, "source"), (1, "receive")):
                d = np.diff(stamps[:, col])
                if (d < 0).any():  # equal is fine: one camera frame can be the nearest to two grid steps
                    report.problems.append(
                        f"{where}: {stream} {name} timestamps go backwards at step {int(np.argmax(d < 0)) + 1}"
                    )
            skew = store.read(f"skew/{stream}", e)
            if np.isfinite(skew).all():
                limit = float(limits_s.get(stream, 2 * period))
                worst = int(np.argmax(np.abs(skew)))
                if abs(skew[worst]) > limit + 1e-6:
                    report.problems.append(
                        f"{where}: {stream} is {skew[worst] * 1000:.1f} ms from its grid time at step {worst} "
                        f"(limit {limit * 1000:.1f} ms)"
                    )
                continue
            gaps = np.diff(stamps[:, 0])[jumps == 1]  # unaligned stores: look for unmarked gaps in the stamps
            dropped = int(np.clip(np.round(gaps / period) - 1, 0, None)[gaps > 1.5 * period].sum())
            if dropped:
                report.problems.append(
                    f"{where}: {stream} dropped about {dropped} frames (source-time gaps > 1.5 periods)"
                )
        if limits is not None:
            lo, hi = limits
            out = (ep["state"] < lo - 1e-3) | (ep["state"] > hi + 1e-3)
            if out.any():
                step, dim = np.argwhere(out)[0]
                report.problems.append(
                    f"{where}: state out of {schema.robot} joint limits ({schema.joint_names[dim]} at step {step}: "
                    f"{ep['state'][step, dim]:.3f} not in [{lo[dim]:.3f}, {hi[dim]:.3f}])"
                )
        cams = [f"images/{c.name}" for c in schema.cameras] + [f"depth/{c.name}" for c in schema.cameras if c.depth]
        frames = None if decode_images else [0, n - 1]
        for key in cams:
            try:
                store.read(key, e, None if frames is None else np.array(sorted(set(frames))))
            except StoreError as exc:
                report.problems.append(str(exc))
    return report


def copy_episode(src: EpisodeStore, i: int, dst: EpisodeStore, block: int = 64) -> int:
    """Append episode ``i`` of ``src`` to ``dst`` (same cameras/dims), streaming ``block`` frames at a time."""
    if (src.schema.state_dim, src.schema.action_dim) != (dst.schema.state_dim, dst.schema.action_dim):
        raise StoreError(f"cannot copy: {src.url} and {dst.url} have different state/action dims")
    if set(src.schema.camera_names) != set(dst.schema.camera_names):
        raise StoreError(f"cannot copy: cameras {src.schema.camera_names} != {dst.schema.camera_names}")
    meta = src.episode_meta(i)
    n = src.episode_length(i)
    streams = dst.schema.streams()
    writer = dst.begin_episode(
        meta.get("instruction", ""),
        operator=meta.get("operator", ""),
        task_id=meta.get("task_id"),
        emoji_id=meta.get("emoji_id"),
        extra={**meta.get("extra", {}), "copied_from": f"{src.url}#{i}"},
    )
    with writer:
        for lo in range(0, n, block):
            sl = slice(lo, min(n, lo + block))
            keys = dict.fromkeys(src.data_keys() + ["step_index"] + [f"skew/{s}" for s in streams])  # v1: derived
            data = {k: src.read(k, i, sl) for k in keys}
            for j in range(sl.stop - sl.start):
                writer.append(
                    {
                        "state": data["state"][j],
                        "action": data["action"][j],
                        "images": {c: data[f"images/{c}"][j] for c in dst.schema.camera_names},
                        "depth": {c.name: data[f"depth/{c.name}"][j] for c in dst.schema.cameras if c.depth},
                        "stamps": {s: tuple(data[f"stamps/{s}"][j]) for s in streams},
                        "step_index": int(data["step_index"][j]),
                        "skew": {s: float(data[f"skew/{s}"][j]) for s in streams},
                    }
                )
        return writer.commit(success=bool(meta.get("success")))


def merge(dst: EpisodeStore, sources: Iterable[EpisodeStore], progress: bool = True) -> int:
    """Append every non-dropped episode of ``sources`` to ``dst`` (``dst`` is not rewritten)."""
    count = 0
    for src in sources:
        for i in tqdm(src.episode_indices(), desc=f"merge {Path(src.url).name}", disable=not progress):
            copy_episode(src, i, dst)
            count += 1
    return count


def split(
    src: EpisodeStore, out_dir: str | Path, val_fraction: float = 0.1, seed: int = 0, progress: bool = True
) -> dict[str, EpisodeStore]:
    """Write ``train.zarr`` and ``val.zarr`` using the same episode split as ``VLADataset``."""
    refs, keys = [], []
    for i in src.episode_indices():
        sl = src.episode_slice(i)
        refs.append(EpisodeRef(0, i, sl.start, sl.stop - sl.start))
        keys.append(f"0:{src.schema.robot}:{src.episode_meta(i).get('start_time')}")
    train, val = split_episodes(refs, keys, val_fraction, seed)
    out = {}
    for name, part in (("train", train), ("val", val)):
        dst = EpisodeStore.create(Path(out_dir) / f"{name}.zarr", src.schema, shard_frames=src.shard_frames)
        for ref in tqdm(part, desc=f"split {name}", disable=not progress):
            copy_episode(src, ref.episode, dst)
        out[name] = dst
    return out


def rewrite(src: EpisodeStore, dst_url: str | Path, progress: bool = True) -> EpisodeStore:
    """Copy the non-dropped episodes into a new, compact store."""
    dst = EpisodeStore.create(dst_url, src.schema, shard_frames=src.shard_frames)
    merge(dst, [src], progress=progress)
    return dst
