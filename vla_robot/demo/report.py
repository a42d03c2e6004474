"""Build ``report/index.html`` (and ``report/README.md``) from a finished demo run directory.

The report only *reads* what the phases wrote: the eval JSONs (metrics are copied from
them verbatim, a test checks they are equal), the trainer's and the prior's logs (curves),
the store contact sheets and the rollout videos. So it can be rebuilt alone with
``python -m vla_robot.demo.report RUN_DIR``.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from vla_robot.demo.sources import (
    EvalSummary,
    find_contact_sheets,
    find_training_logs,
    read_eval,
    read_prior_summary,
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:28px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;color:#b8c0d0}main{max-width:1100px;margin:0 auto;padding:24px 40px 60px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:20px 24px;margin:18px 0}
h2{margin:0 0 14px;font-size:19px}table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 10px;border-bottom:1px solid #e5e8ee;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f0f2f6;font-weight:600}.good{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:14px}.grid figure{margin:0;width:240px}.grid img,.grid video{width:240px;border-radius:6px;border:1px solid #dde}
figcaption{font-size:12px;color:#555;margin-top:4px}img.wide{max-width:100%;border-radius:6px;border:1px solid #dde}
pre{background:#1d2330;color:#e6e9ef;padding:12px 14px;border-radius:6px;overflow-x:auto;font-size:13px;line-height:1.45}
.note{font-size:13px;color:#555}.kpi{display:flex;gap:16px;flex-wrap:wrap}.kpi div{background:#f0f2f6;border-radius:8px;padding:10px 16px}
.kpi b{display:block;font-size:22px}
"""


@dataclass
class ReportInputs:
    run_dir: Path
    manifest: dict
    evals: dict[str, EvalSummary]
    prior: dict | None
    curves_png: Path | None
    contact_sheets: list[Path]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def plot_curves(run_dir: Path, out_png: Path) -> Path | None:
    """Loss curves of every training phase found (prior LM loss, VLA stage 1, stage 2)."""
    logs = find_training_logs(run_dir)
    if not logs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs), figsize=(4.2 * len(logs), 3.2), squeeze=False)
    for ax, (label, series) in zip(axes[0], logs.items()):
        for name, (steps, values) in series.items():
            ax.plot(steps, values, label=name, lw=1.2)
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def gather(run_dir: Path, assets: Path) -> ReportInputs:
    manifest_path = run_dir / "demo_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    evals = {}
    for split in ("train", "val"):
        summary = read_eval(run_dir / "eval" / split, split)
        if summary is not None:
            evals[split] = summary
    return ReportInputs(
        run_dir=run_dir,
        manifest=manifest,
        evals=evals,
        prior=read_prior_summary(run_dir / "prior"),
        curves_png=plot_curves(run_dir, assets / "training_curves.png"),
        contact_sheets=find_contact_sheets(run_dir),
    )


SIGNIFICANCE = 0.05


def chance_p_value(recognised: int, executed: int, chance: float) -> float:
    """One-sided P(X >= recognised), X ~ Binomial(executed, chance): how often a policy that picks a
    random card would recognise at least this many. 60 % of 15 executed episodes looks better than
    50 %, but a random picker does that well 30 % of the time."""
    return min(1.0, sum(math.comb(executed, k) * chance**k * (1 - chance) ** (executed - k)
                        for k in range(recognised, executed + 1)))


def metrics_rows(inputs: ReportInputs) -> list[dict]:
    """The metrics table, straight from the eval JSONs (no recomputation).

    "Beats random" means significantly: Rec. SR above the random-card rate with a one-sided
    binomial p-value under ``SIGNIFICANCE`` over the executed episodes.
    """
    rows = []
    for split, ev in inputs.evals.items():
        p_value = None
        if ev.executed and ev.recognised is not None and ev.random_rec_sr is not None:
            p_value = chance_p_value(ev.recognised, ev.executed, ev.random_rec_sr)
        rows.append(
            {
                "split": split,
                "episodes": ev.episodes,
                "executed": ev.executed,
                "recognised": ev.recognised,
                "exe_sr": ev.exe_sr,
                "rec_sr": ev.rec_sr,
                "overall_sr": ev.overall_sr,
                "random_rec_sr": ev.random_rec_sr,
                "p_vs_random": p_value,
                "beats_random": p_value is not None and p_value < SIGNIFICANCE and ev.rec_sr > ev.random_rec_sr,
            }
        )
    return rows


def _counts(part: int | None, whole: int | None) -> str:
    return "" if part is None or whole is None else f" <span class='note'>({part}/{whole})</span>"


def _p_value(p: float | None) -> str:
    return "" if p is None else f" <span class='note'>(p = {p:.2g})</span>"


def _copy(src: Path, assets: Path, name: str | None = None) -> str:
    dst = assets / (name or src.name)
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    return f"assets/{dst.name}"


def _video_figures(ev: EvalSummary, split: str, assets: Path, per_kind: int = 3) -> str:
    figs = []
    for outcome in ("success", "failure"):
        picked = [ep for ep in ev.episode_list if ep.get("video") and bool(ep.get("success")) == (outcome == "success")]
        for ep in picked[:per_kind]:
            video = Path(ep["video"])
            if not video.exists():
                continue
            gif = assets / f"{split}_{outcome}_{video.stem}.gif"
            rel = _to_gif(video, gif) or _copy(video, assets, f"{split}_{video.name}")
            caption = html.escape(
                f"{split} · {outcome} · {ep.get('instruction', '')} · "
                f"executed={bool(ep.get('executed'))} recognised={bool(ep.get('recognised'))}"
            )
            tag = f'<img src="{rel}" alt="rollout">' if rel.endswith(".gif") else f'<video src="{rel}" controls muted loop></video>'
            figs.append(f"<figure>{tag}<figcaption>{caption}</figcaption></figure>")
    return "".join(figs) or '<p class="note">no rollout videos in this split</p>'


def _to_gif(video: Path, gif: Path, max_frames: int = 80, size: int = 240) -> str | None:
    """An animated GIF preview of an MP4 (browsers and Markdown viewers show GIFs inline)."""
    try:
        import imageio.v3 as iio
        from PIL import Image

        frames = [Image.fromarray(f) for f in iio.imread(video)]
    except Exception:  # an unreadable video only loses its preview
        return None
    if not frames:
        return None
    step = max(1, len(frames) // max_frames)
    frames = [f.resize((size, int(size * f.height / f.width))) for f in frames[::step]]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return f"assets/{gif.name}"


def render_html(inputs: ReportInputs, assets: Path) -> str:
    m = inputs.manifest
    rows = metrics_rows(inputs)
    title = "vla-robot demo report"
    cfg = m.get("config", {})
    subtitle = (
        f"GrinningFace twin · {cfg.get('robot', '?')} · {cfg.get('n_cards', '?')} cards · "
        f"{cfg.get('image_size', '?')} px · staged LoRA · total {m.get('elapsed_s', 0) / 60:.1f} min"
    )
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<header><h1>{title}</h1><p>{html.escape(subtitle)}</p></header><main>")
    if m.get("quick"):
        parts.append("<section class='note'><b>--quick run</b>: a few seconds of training per phase to check the "
                     "pipeline; its success rates mean nothing.</section>")

    kpis = "".join(
        f"<div>{html.escape(r['split'])} Rec. SR<b class='{'good' if r['beats_random'] else 'bad'}'>{_pct(r['rec_sr'])}</b>"
        f"<span class='note'>random card {_pct(r['random_rec_sr'])}</span></div>"
        for r in rows
    )
    parts.append(f"<section><h2>Result</h2><div class='kpi'>{kpis}</div></section>")

    table = "".join(
        f"<tr><td>{r['split']}</td><td>{r['episodes']}</td><td>{_pct(r['exe_sr'])}{_counts(r['executed'], r['episodes'])}</td>"
        f"<td>{_pct(r['rec_sr'])}{_counts(r['recognised'], r['executed'])}</td>"
        f"<td>{_pct(r['overall_sr'])}</td><td>{_pct(r['random_rec_sr'])}</td>"
        f"<td class='{'good' if r['beats_random'] else 'bad'}'>{'yes' if r['beats_random'] else 'no'}"
        f"{_p_value(r['p_vs_random'])}</td></tr>"
        for r in rows
    )
    parts.append(
        "<section><h2>Closed-loop metrics</h2><table><tr><th>emoji split</th><th>episodes</th><th>Exe. SR</th>"
        "<th>Rec. SR</th><th>overall SR</th><th>random-card Rec. SR</th><th>beats random (p)</th></tr>"
        f"{table}</table><p class='note'>Exe. SR: the cube was released on some card. Rec. SR: among executed episodes, "
        "the card was the instructed one. Overall SR = executed and recognised. Random-card baseline = 1 / number of cards. "
        "Beats random: a one-sided binomial test over the executed episodes puts the chance that a random-card "
        f"policy recognises as many below p = {SIGNIFICANCE}. "
        "Values are copied from <code>eval/&lt;split&gt;/</code> JSON reports.</p></section>"
    )

    if inputs.prior:
        p = inputs.prior.get("probe", {})
        parts.append(
            "<section><h2>VLM prior (synthetic emoji pretraining)</h2><table><tr><th>probe</th><th>train emojis</th>"
            "<th>val emojis</th><th>chance</th></tr>"
            f"<tr><td>which emoji is this?</td><td>{_pct(p.get('identify_train'))}</td><td>{_pct(p.get('identify_val'))}</td>"
            f"<td>{_pct(p.get('identify_chance'))}</td></tr>"
            f"<tr><td>where is the X? (2 cards)</td><td>{_pct(p.get('where_train'))}</td><td>{_pct(p.get('where_val'))}</td>"
            f"<td>{_pct(p.get('where_chance'))}</td></tr>"
            + "".join(
                f"<tr><td>{question} (twin scene, 2 cards)</td><td>{_pct(p.get(f'twin_{kind}_train'))}</td>"
                f"<td>{_pct(p.get(f'twin_{kind}_val'))}</td><td>50.0%</td></tr>"
                for kind, question in (("where", "where is the X?"), ("which", "which emoji is on the left/right?"))
                if p.get(f"twin_{kind}_train") is not None
            )
            + "</table>"
            f"<p class='note'>{inputs.prior.get('parameters', 0):,} parameters, "
            f"{inputs.prior.get('train_seconds', 0):.0f} s of pretraining.</p></section>"
        )

    if inputs.curves_png:
        parts.append(f"<section><h2>Training curves</h2><img class='wide' src='{_copy(inputs.curves_png, assets)}'></section>")

    if inputs.contact_sheets:
        sheets = "".join(
            f"<figure style='width:100%'><img class='wide' src='{_copy(p, assets, f'sheet_{i}_{p.name}')}'>"
            f"<figcaption>{html.escape(p.parent.name)}/{html.escape(p.name)}</figcaption></figure>"
            for i, p in enumerate(inputs.contact_sheets)
        )
        parts.append(f"<section><h2>Collected episodes</h2>{sheets}</section>")

    for split, ev in inputs.evals.items():
        parts.append(f"<section><h2>Rollouts · {split} emojis</h2><div class='grid'>{_video_figures(ev, split, assets)}</div>")
        if ev.summary_png and ev.summary_png.exists():
            parts.append(f"<img class='wide' src='{_copy(ev.summary_png, assets, f'eval_{split}_summary.png')}'>")
        parts.append("</section>")

    phases = m.get("phases", [])
    if phases:
        rows_html = "".join(
            f"<tr><td>{html.escape(p['name'])}</td><td>{p['seconds']:.0f} s</td><td>{html.escape(p['description'])}</td></tr>"
            for p in phases
        )
        commands = "\n".join(p["command"] for p in phases)
        parts.append(
            f"<section><h2>Reproduce</h2><p class='note'>Each phase is its own command; run them in order "
            f"(or <code>{html.escape(m.get('main_command', 'vla-robot demo'))}</code> for all of them).</p>"
            f"<pre>{html.escape(commands)}</pre><table><tr><th>phase</th><th>wall-clock</th><th>what</th></tr>{rows_html}</table></section>"
        )
    parts.append("</main></body></html>")
    return "".join(parts)


def render_markdown(inputs: ReportInputs) -> str:
    lines = ["# vla-robot demo report", "",
             "| emoji split | episodes | Exe. SR | Rec. SR | overall SR | random-card Rec. SR | beats random (p) |",
             "|---|---|---|---|---|---|---|"]
    for r in metrics_rows(inputs):
        verdict = ("yes" if r["beats_random"] else "no") + ("" if r["p_vs_random"] is None else f" ({r['p_vs_random']:.2g})")
        lines.append(
            f"| {r['split']} | {r['episodes']} | {_pct(r['exe_sr'])} | {_pct(r['rec_sr'])} | {_pct(r['overall_sr'])} "
            f"| {_pct(r['random_rec_sr'])} | {verdict} |"
        )
    if inputs.curves_png:
        lines += ["", "![training curves](assets/training_curves.png)"]
    phases = inputs.manifest.get("phases", [])
    if phases:
        lines += ["", "## Reproduce", "", "```bash", *[p["command"] for p in phases], "```"]
    return "\n".join(lines) + "\n"


def build_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    out = run_dir / "report"
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    inputs = gather(run_dir, assets)
    (out / "index.html").write_text(render_html(inputs, assets))
    (out / "README.md").write_text(render_markdown(inputs))
    (out / "metrics.json").write_text(json.dumps(metrics_rows(inputs), indent=2))
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vla_robot.demo.report", description="(re)build the demo report of RUN_DIR")
    parser.add_argument("run_dir", help="the --out directory of `vla-robot demo`")
    args = parser.parse_args(argv)
    print(build_report(args.run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
