"""What aligned steps become in the episode store: the step dict and the episode's ``alignment`` report.

One place for both, used by the live recorder's writer thread (``EpisodeRecorder``) and by the
bag import (``rosbag_import``): a bag and a live recording of the same streams must give the
same store, and two hand-kept copies of the step dict had already drifted apart once (the
import wrote format-1 steps, without ``step_index`` and ``skew``, after the recorder moved to
format 2). Fields: docs/dataset-format.md (format 2) and docs/collect.md ("How alignment works").
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from vla_robot.recorder.aligner import AlignedStep, AlignerStats, Hole

RULE = "nearest sample within max_skew_s of each grid time"


def step_record(step: AlignedStep, cameras: Sequence[str], depth_cameras: Sequence[str] = ()) -> dict:
    """One complete aligned step as ``EpisodeWriter.append`` takes it: the samples' values, every
    stream's (source stamp, receive time), the grid step index (a jump marks a hole) and the skews."""
    s = step.samples
    return {
        "state": s["state"].value,
        "action": s["action"].value,
        "images": {c: s[f"images/{c}"].value for c in cameras},
        "depth": {c: s[f"depth/{c}"].value for c in depth_cameras},
        "stamps": {name: (smp.stamp, smp.receive) for name, smp in s.items()},
        "step_index": step.index,
        "skew": dict(step.skew),
    }


def skew_summary(values: Sequence[float]) -> dict[str, float]:
    """|skew| percentiles of one stream over an episode, in milliseconds."""
    if not len(values):
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    a = np.abs(np.asarray(values, dtype=np.float64)) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def alignment_report(stats: AlignerStats, *, control_rate_hz: float, grid_start: float | None, requested_s: float,
                     max_skew_s: Mapping[str, float], skews: Mapping[str, Sequence[float]],
                     extra_holes: Iterable[Hole] = (), queue_dropped_steps: int = 0) -> dict:
    """Episode metadata ``extra.alignment``: how the saved steps relate to start -> save.

    ``stats`` are the aligner's for the episode; ``extra_holes`` are steps that were aligned but
    not stored (a full writer queue, a step the writer refused); ``requested_s`` is the time
    between the operator's start and save (a bag: between its markers)."""
    st = stats
    period = 1.0 / control_rate_hz
    holes = sorted([*st.holes, *extra_holes], key=lambda h: h.start)
    missing = sorted({h.start + k for h in holes for k in range(h.length)})
    grid_steps = st.steps + st.hole_steps  # complete steps are 0 .. grid_steps-1, holes between them
    notes = []
    if st.warmup_steps:
        notes.append(f"warm-up: the first {st.warmup_steps} step(s) ({st.warmup_steps * period:.2f} s) were "
                     f"skipped while waiting for {', '.join(st.warmup_streams)}")
    if missing:
        causes = sorted({s for h in holes for s in h.streams})
        notes.append(f"{len(missing)} step(s) ({len(missing) * period:.2f} s) missing in {len(holes)} marked hole(s): "
                     f"{', '.join(causes)}")
    if st.trimmed_steps:
        notes.append(f"trimmed: the last {st.trimmed_steps} step(s) ({st.trimmed_steps * period:.2f} s) had no "
                     f"sample from {', '.join(st.trimmed_streams)}")
    covered = (grid_steps + st.warmup_steps + st.trimmed_steps) * period
    if abs(covered - requested_s) > 1.5 * period:
        notes.append(f"the streams' stamps cover {covered:.2f} s of the {requested_s:.2f} s between start and "
                     "save (stamp clock running at another speed, or every stream silent for a while)")
    return {
        "rule": RULE,
        "grid_start": grid_start,  # stamp of step 0
        "grid_steps": grid_steps,
        "requested_s": requested_s,
        "warmup_steps": st.warmup_steps,
        "hole_steps": len(missing),
        "holes": [h.as_dict() for h in holes],
        "trimmed_steps": st.trimmed_steps,
        "queue_dropped_steps": queue_dropped_steps,
        "max_skew_s": dict(max_skew_s),
        "skew": {s: skew_summary(v) for s, v in skews.items()},
        "out_of_order": dict(st.out_of_order),
        "late": dict(st.late),
        "notes": notes,
    }


def commit_meta(stats: AlignerStats, alignment: dict) -> dict:
    """The alignment keys every recorded episode commits with (``EpisodeWriter.commit(**...)``)."""
    return {"alignment": alignment, "gaps": dict(stats.gaps), "dropped_steps": alignment["hole_steps"]}
