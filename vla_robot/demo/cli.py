"""`vla-robot demo`: collect → VLM prior → staged LoRA → closed-loop eval → report, on the twin.

Each phase is a subprocess running the phase's own command (printed in the report, in
``--dry-run`` and in ``demo_manifest.json``), so an engineer can rerun one phase alone or
replace one: put your own stores in place and ``--skip collect_grinning_face ...``, or run
the printed ``vla-train`` command with ``model.backbone=<hub id>`` and then
``--only eval_train eval_val report``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from vla_robot.demo.plan import FULL, QUICK, DemoSettings, build_phases
from vla_robot.demo.runner import PhaseFailed, PhaseRejected, run_phases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="run directory (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a reduced run of a few minutes (CI); numbers are not meaningful")
    parser.add_argument("--only", nargs="+", metavar="PHASE", help="run only these phases (names as in the report)")
    parser.add_argument("--skip", nargs="+", metavar="PHASE", default=[], help="skip these phases (their outputs must exist)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--dry-run", action="store_true", help="print the phase commands and exit")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE",
        help="override a demo setting, e.g. --set eval_episodes=40 n_cards=3 "
        f"(keys: {', '.join(f.name for f in fields(DemoSettings))})",
    )


def _apply_overrides(settings: DemoSettings, pairs: list[str]) -> DemoSettings:
    known = {f.name: f for f in fields(DemoSettings)}
    updates = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE with KEY in {sorted(known)}")
        current = getattr(settings, key)
        updates[key] = type(current)(value)
    return replace(settings, **updates)


def run(args: argparse.Namespace) -> int:
    try:
        settings = _apply_overrides(QUICK if args.quick else FULL, args.set)
    except ValueError as exc:
        print(f"vla-robot demo: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    phases = build_phases(settings, out)
    names = [p.name for p in phases]
    for name in [*(args.only or []), *args.skip]:
        if name not in names:
            print(f"vla-robot demo: unknown phase {name!r}; phases are {', '.join(names)}", file=sys.stderr)
            return 2
    selected = [p for p in phases if (not args.only or p.name in args.only) and p.name not in args.skip]
    if args.dry_run:
        for p in selected:
            print(f"# {p.name}: {p.description}\n{p.command}\n")
        return 0
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    main_command = "vla-robot demo" + (" --quick" if args.quick else "") + f" --out {out}"
    header = {"main_command": main_command, "config": settings.as_dict(), "quick": bool(args.quick)}
    print(f"vla-robot demo → {out}  ({len(selected)} phases, expected ~{settings.expected_minutes:.0f} min on 2 CPU cores)",
          file=sys.stderr)
    env = {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    kept = []
    manifest = out / "demo_manifest.json"
    if manifest.exists() and len(selected) < len(phases):
        previous = {p["name"]: p for p in json.loads(manifest.read_text()).get("phases", [])}
        kept = [previous[p.name] for p in phases if p not in selected and p.name in previous]
    t0 = time.time()
    try:
        run_phases(selected, out / "logs", manifest, settings.expected_minutes * 60, env=env, header=header, kept=kept)
    except PhaseRejected as exc:
        print(f"vla-robot demo: {exc}", file=sys.stderr)
        return 2
    except PhaseFailed as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    report = out / "report" / "index.html"
    metrics = json.loads((out / "report" / "metrics.json").read_text()) if (out / "report" / "metrics.json").exists() else []
    print(f"\ndone in {(time.time() - t0) / 60:.1f} min → {report}", file=sys.stderr)
    for row in metrics:
        print(
            f"  {row['split']:5s} emojis: Exe. SR {_pct(row['exe_sr'])}  Rec. SR {_pct(row['rec_sr'])}  "
            f"SR {_pct(row['overall_sr'])}  (random-card Rec. SR {_pct(row['random_rec_sr'])}"
            + ("" if row.get("p_vs_random") is None else
               f"; {'beats it' if row['beats_random'] else 'not above it'}, p = {row['p_vs_random']:.2g}") + ")",
            file=sys.stderr,
        )
    return 0


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"
