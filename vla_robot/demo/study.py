"""The study's arms, their commands, and the table/plot built from their eval and probe JSONs."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from vla_robot.demo.plan import DemoSettings, Paths, eval_argv, train_argv, train_check, twin_vqa_overrides
from vla_robot.demo.runner import Phase
from vla_robot.demo.sources import read_eval

ARMS = ("full", "lora", "staged", "freeze_vision", "head_only", "cotrain", "no_prior")

# What the seed papers report for each arm, to print beside this run's numbers. Never tuned to.
PAPER_CLAIMS = {
    "full": "GrinningFace: full fine-tuning learns motor skills fastest but erodes VLM priors (low val Rec. SR); "
            "Rethinking-VLM-init: full FT is a less reliable initialisation than LoRA.",
    "lora": "GrinningFace: LoRA preserves priors well but needs more steps for motor skills; "
            "Rethinking-VLM-init: LoRA beats full FT.",
    "staged": "Rethinking-VLM-init: staged LoRA with robot-data pretraining is the strongest variant.",
    "freeze_vision": "VLM4VLA: the vision encoder is the bottleneck; freezing it hurts control unless it got "
                     "control-relevant supervision.",
    "head_only": "GrinningFace: action-expert-only fine-tuning keeps priors intact but executes poorly "
                 "(used there as a probe of pre-training quality).",
    "cotrain": "GrinningFace: co-training with vision-language data preserves priors and improves recognition "
               "on held-out emojis.",
    "no_prior": "VLM4VLA: training from scratch collapses; the VLM initialisation gives a consistent benefit.",
}


def arm_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "arms" / f"{arm}_s{seed}"


def _strategy(arm: str, s: DemoSettings, data: Paths, vqa_ratio: float) -> list[str]:
    if arm in ("full", "no_prior"):
        return ["strategy.name=full"]
    if arm == "cotrain":
        return ["strategy.name=full", *twin_vqa_overrides(s, vqa_ratio, questions="all")]
    if arm == "staged":
        stores = [str(data.store(t)) for t in ("reach", "push")]
        return ["strategy.name=staged", f"strategy.stage1.steps={max(s.stage1_steps, 1)}",
                f"strategy.stage1.stores=[{','.join(stores)}]", f"strategy.stage1.lora.rank={s.lora_rank}",
                f"strategy.lora.rank={s.lora_rank}"]
    if arm == "lora":
        return ["strategy.name=lora", f"strategy.lora.rank={s.lora_rank}"]
    return [f"strategy.name={arm}"]


def arm_phases(arm: str, seed: int, s: DemoSettings, out: Path, data: Paths, vqa_ratio: float = 0.25) -> list[Phase]:
    if arm not in ARMS:
        raise ValueError(f"unknown study arm {arm!r}; allowed: {', '.join(ARMS)}")
    d = arm_dir(out, arm, seed)
    backbone = out / "no_prior" if arm == "no_prior" else data.prior
    tag = f"{arm}_s{seed}"
    argv = train_argv(s, data.store("grinning_face"), backbone, _strategy(arm, s, data, vqa_ratio), seed, d / "train")
    train = Phase(f"train_{tag}", argv, f"{arm} (seed {seed}) on train-emoji placement", 1.0 + s.stage2_steps / 150,
                  check=train_check(argv))
    phases = [train]
    for split in ("train", "val"):
        phases.append(Phase(
            f"eval_{split}_{tag}",
            eval_argv(s, d / "train" / "bundle", split, d / "eval" / split),
            f"closed-loop eval of {tag} on {split} emojis", 0.3 + 0.05 * s.eval_episodes,
        ))
    phases.append(Phase(
        f"probe_{tag}",
        [sys.executable, "-m", "training.prior.probe_cli", str(d / "train" / "bundle"), "--out", str(d / "probe.json"),
         *(["--layout-seed", str(s.layout_seed)] if s.layout_seed >= 0 else [])],
        f"emoji VQA probe of {tag}'s trained backbone (prior survival)", 0.2,
    ))
    return phases


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


METRICS = ("train_exe_sr", "train_rec_sr", "train_sr", "val_exe_sr", "val_rec_sr", "val_sr",
           "probe_identify_val", "probe_where_val", "probe_twin_where_val", "probe_identify_train")


def summarise_study(out: Path) -> list[dict]:
    """One row per arm (mean and std over the seeds that finished), from the files only."""
    per_arm: dict[str, list[dict]] = {}
    for d in sorted((out / "arms").glob("*_s*")):
        arm, _, seed = d.name.rpartition("_s")
        rec: dict = {"seed": int(seed)}
        for split in ("train", "val"):
            ev = read_eval(d / "eval" / split, split)
            if ev is not None:
                rec.update({f"{split}_exe_sr": ev.exe_sr, f"{split}_rec_sr": ev.rec_sr, f"{split}_sr": ev.overall_sr,
                            f"{split}_episodes": ev.episodes})
        if (d / "probe.json").exists():
            probe = json.loads((d / "probe.json").read_text())
            rec.update({f"probe_{k}": probe[k] for k in ("identify_train", "identify_val", "where_train", "where_val")})
            rec["probe_twin_where_val"] = probe.get("twin_where_val")  # absent in probes run without twin scenes
        per_arm.setdefault(arm, []).append(rec)
    rows = []
    for arm in [a for a in ARMS if a in per_arm]:
        seeds = per_arm[arm]
        row = {"arm": arm, "seeds": [r["seed"] for r in seeds], "paper": PAPER_CLAIMS[arm]}
        for key in METRICS:
            row[key], row[f"{key}_std"] = _mean_std([r.get(key) for r in seeds])
        row["runs"] = seeds
        rows.append(row)
    return rows


def _fmt(mean, std) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.0f}" + (f" ± {100 * std:.0f}" if std else "")


def write_outputs(rows: list[dict], out: Path, n_cards: int) -> dict[str, Path]:
    paths = {"json": out / "study_results.json", "table": out / "study_table.md", "plot": out / "study_plot.png"}
    paths["json"].write_text(json.dumps({"n_cards": n_cards, "random_rec_sr": 1 / n_cards, "rows": rows}, indent=2))
    head = ("| arm | seeds | train Exe. SR | train Rec. SR | train SR | val Exe. SR | val Rec. SR | val SR | "
            "probe: identify val | probe: where val | probe: twin where val |")
    lines = [head, "|---" * 11 + "|"]
    for r in rows:
        cells = [_fmt(r[k], r[f"{k}_std"]) for k in ("train_exe_sr", "train_rec_sr", "train_sr", "val_exe_sr",
                                                     "val_rec_sr", "val_sr", "probe_identify_val", "probe_where_val",
                                                     "probe_twin_where_val")]
        lines.append(f"| {r['arm']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Percent, mean ± std over seeds. Random-card Rec. SR = {100 / n_cards:.0f}%. "
                 "Probe chance: identify = 1/60, where = 50%.")
    paths["table"].write_text("\n".join(lines) + "\n")
    _plot(rows, paths["plot"], n_cards)
    return paths


def _plot(rows: list[dict], path: Path, n_cards: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [("train_rec_sr", "Rec. SR train"), ("val_rec_sr", "Rec. SR val"), ("val_sr", "SR val"),
            ("probe_identify_val", "probe identify val")]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows) + 2), 3.8))
    width = 0.8 / len(keys)
    x = np.arange(len(rows))
    for i, (key, label) in enumerate(keys):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        errs = [r[f"{key}_std"] or 0.0 for r in rows]
        ax.bar(x + i * width, vals, width, yerr=errs, label=label, capsize=2)
    ax.axhline(1 / n_cards, color="k", ls="--", lw=1, label="random card")
    ax.set_xticks(x + width * (len(keys) - 1) / 2, [r["arm"] for r in rows])
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("GrinningFace twin: update strategies")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
