"""Readers for what the phases leave on disk: eval JSONs, training logs, contact sheets.

Each reader tolerates a missing artefact (returns None / empty) so that a report can be
built from a partial run, but never invents a number: every metric comes from a file.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY_KEYS = ("exe_sr", "rec_sr")


@dataclass
class EvalSummary:
    """One split's closed-loop result, exactly as `vla-robot eval` reported it."""

    path: Path
    episodes: int
    exe_sr: float | None
    rec_sr: float | None
    overall_sr: float | None
    random_rec_sr: float | None
    n_cards: int | None
    executed: int | None = None
    recognised: int | None = None
    episode_list: list[dict] = field(default_factory=list)
    summary_png: Path | None = None
    raw: dict = field(default_factory=dict)


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _count(value) -> int | None:
    return None if value is None else int(value)


def _find_summary(data: dict, split: str | None = None) -> dict | None:
    """The dict holding exe_sr/rec_sr: the top level, a nested ``metrics``/``summary``, or
    ``metrics[split]`` (the layout of `vla-robot eval`'s report.json)."""
    if all(k in data for k in SUMMARY_KEYS):
        return data
    if split is not None and isinstance(data.get(split), dict):
        found = _find_summary(data[split])
        if found is not None:
            return found
    for key in ("metrics", "summary", "result", "results"):
        inner = data.get(key)
        if isinstance(inner, dict):
            found = _find_summary(inner, split)
            if found is not None:
                return found
            nested = [v for v in inner.values() if isinstance(v, dict) and all(k in v for k in SUMMARY_KEYS)]
            if split is None and len(nested) == 1:
                return nested[0]
    return None


def eval_json_path(eval_dir: Path) -> Path | None:
    """The eval report in ``eval_dir``: ``report.json``/``eval.json``/``metrics.json`` or any JSON with exe_sr."""
    if eval_dir.is_file():
        return eval_dir
    if not eval_dir.is_dir():
        return None
    for name in ("report.json", "eval.json", "eval_report.json", "metrics.json", "summary.json"):
        if (eval_dir / name).exists():
            return eval_dir / name
    for path in sorted(eval_dir.glob("*.json")):
        try:
            if _find_summary(json.loads(path.read_text())) is not None:
                return path
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            continue
    return None


def _resolve(base: Path, value) -> str | None:
    if not value:
        return None
    p = Path(value)
    return str(p if p.is_absolute() else base / p)


def read_eval(eval_dir: Path, split: str | None = None) -> EvalSummary | None:
    """The metrics of ``split`` (or the only split) in the eval report under ``eval_dir``."""
    path = eval_json_path(Path(eval_dir))
    if path is None:
        return None
    data = json.loads(path.read_text())
    summary = _find_summary(data, split)
    if summary is None:
        raise ValueError(f"{path} has no {SUMMARY_KEYS} metrics; is it a `vla-robot eval` report?")
    episodes = data.get("episodes") if isinstance(data.get("episodes"), list) else []
    if split is not None:
        episodes = [e for e in episodes if not isinstance(e, dict) or e.get("split", split) == split]
    config = next((data[k] for k in ("eval", "config") if isinstance(data.get(k), dict)), {})
    n_cards = data.get("n_cards") or config.get("n_cards") or (config.get("twin") or {}).get("n_cards")
    videos = [v for v in data.get("videos", []) if isinstance(v, str)]
    if n_cards is None and episodes and isinstance(episodes[0], dict) and episodes[0].get("cards"):
        n_cards = len(episodes[0]["cards"])
    baseline = data.get("random_rec_sr", summary.get("random_rec_sr"))
    if baseline is None and n_cards:
        baseline = 1.0 / int(n_cards)
    eps = []
    for ep in episodes:
        if isinstance(ep, dict):
            ep = dict(ep)
            video = ep.get("video") or ep.get("video_path") or ep.get("mp4") or _video_of(ep, videos)
            ep["video"] = _resolve(path.parent, video)
            eps.append(ep)
    png = next((p for p in sorted(path.parent.glob("*.png")) if "summary" in p.name), None)
    n = summary.get("episodes", len(eps))
    return EvalSummary(
        path=path,
        episodes=int(n if not isinstance(n, list) else len(n)),
        exe_sr=_num(summary.get("exe_sr")),
        rec_sr=_num(summary.get("rec_sr")),
        overall_sr=_num(summary.get("sr", summary.get("overall_sr", summary.get("success_rate")))),
        random_rec_sr=_num(baseline),
        n_cards=int(n_cards) if n_cards else None,
        executed=_count(summary.get("executed")),
        recognised=_count(summary.get("recognised")),
        episode_list=eps,
        summary_png=png,
        raw=data,
    )


def _video_of(episode: dict, videos: list[str]) -> str | None:
    """`vla-robot eval` names videos ``<split>_ep<NNN>_<success|failure>.mp4``."""
    if "episode" not in episode:
        return None
    key = f"{episode.get('split', '')}_ep{int(episode['episode']):03d}_"
    return next((v for v in videos if Path(v).name.startswith(key)), None)


def read_prior_summary(prior_dir: Path) -> dict | None:
    path = Path(prior_dir) / "prior_summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def _read_jsonl_losses(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = rec.get("step", rec.get("global_step"))
        if step is None:
            continue
        for key, value in rec.items():
            if "loss" in key and isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
                series.setdefault(key, ([], []))
                series[key][0].append(float(step))
                series[key][1].append(float(value))
    return series


def _read_csv_losses(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            step = row.get("step")
            if step is None:
                continue
            for key, value in row.items():
                if key and "loss" in key and value not in (None, ""):
                    v = float(value)
                    if math.isfinite(v) and v > 0:
                        series.setdefault(key, ([], []))
                        series[key][0].append(float(step))
                        series[key][1].append(v)
    return series


def _read_tensorboard(run: Path) -> dict[str, tuple[list[float], list[float]]]:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    acc = EventAccumulator(str(run))
    acc.Reload()
    series = {}
    for tag in acc.Tags().get("scalars", []):
        if "loss" in tag:
            events = acc.Scalars(tag)
            series[tag] = ([e.step for e in events], [e.value for e in events])
    return series


def _smooth(series: dict[str, tuple[list[float], list[float]]], window: int = 20) -> dict[str, tuple[list[float], list[float]]]:
    out = {}
    for name, (steps, values) in series.items():
        if len(values) > 4 * window:
            sm = [sum(values[max(0, i - window + 1): i + 1]) / len(values[max(0, i - window + 1): i + 1]) for i in range(len(values))]
            out[name] = (steps, sm)
        else:
            out[name] = (steps, values)
    return out


def read_losses(run: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Loss series of one training run directory: JSONL / CSV logs, else TensorBoard events."""
    run = Path(run)
    for pattern in ("*.jsonl", "**/*.jsonl"):
        for path in sorted(run.glob(pattern)):
            series = _read_jsonl_losses(path)
            if series:
                return _smooth(series)
    for path in sorted(run.glob("**/*.csv")):
        series = _read_csv_losses(path)
        if series:
            return _smooth(series)
    if list(run.glob("**/events.out.tfevents*")):
        return _smooth(_read_tensorboard(run))
    return {}


def find_training_logs(run_dir: Path) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Curves per training phase of a demo run: the prior (LM loss), then each VLA stage.

    Every JSONL log under ``train/`` is its own panel (staged training writes
    ``stage1/history.jsonl`` and ``stage2/history.jsonl``); TensorBoard events are the fallback.
    """
    run_dir = Path(run_dir)
    found = {}
    prior = run_dir / "prior"
    if prior.is_dir():
        series = read_losses(prior)
        if series:
            found["VLM prior (LM loss)"] = series
    train = run_dir / "train"
    if train.is_dir():
        logs = sorted(p for p in train.glob("**/*.jsonl") if "checkpoint" not in str(p))
        for path in logs:
            series = _read_jsonl_losses(path)
            if series:
                found[f"VLA {path.parent.relative_to(train).as_posix()}"] = _smooth(series)
        if not logs:
            for run in sorted(p for p in train.iterdir() if p.is_dir()):
                series = read_losses(run)
                if series:
                    found[f"VLA {run.name}"] = series
    return found


def find_contact_sheets(run_dir: Path) -> list[Path]:
    base = Path(run_dir) / "data"
    return sorted(p for p in base.glob("**/*.png") if "sheet" in p.name or "contact" in p.name) if base.is_dir() else []
