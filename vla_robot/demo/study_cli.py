"""`vla-robot study`: which update strategy preserves the VLM's prior? (GrinningFace twin)

From one prior (and one set of stores), trains a VLA per arm and seed, evaluates it
closed-loop on train and validation emojis, and probes how much emoji knowledge the
trained backbone kept (the prior's VQA probe). Arms: ``full``, ``lora``, ``staged``,
``freeze_vision``, ``head_only``, ``cotrain`` (full fine-tuning + twin VQA batches under
the LM loss) and ``no_prior`` (the same architecture, random init, full fine-tuning).

Every step is a subprocess running its own command (as in `vla-robot demo`); results go
to ``OUT/study_results.json``, ``OUT/study_table.md`` and ``OUT/study_plot.png``. Reuse a
demo run's stores and prior with ``--from-demo out/demo``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from vla_robot.demo.plan import FULL, QUICK, Paths, build_phases
from vla_robot.demo.runner import Phase, PhaseFailed, PhaseRejected, run_phases
from vla_robot.demo.study import ARMS, arm_phases, summarise_study, write_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--out", type=Path, default=Path("out/study"), help="study directory (default: %(default)s)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="arms to run (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds per arm (default: 0 1 2)")
    parser.add_argument("--from-demo", type=Path, help="reuse the stores and the prior of this demo run directory")
    parser.add_argument("--steps", type=int, help="target-task training steps per arm (default: the demo's)")
    parser.add_argument("--stage1-steps", type=int, help="stage-1 steps of the staged arm (default: the demo's)")
    parser.add_argument("--eval-episodes", type=int, help="eval episodes per split (default: the demo's)")
    parser.add_argument("--vqa-ratio", type=float, default=0.25, help="VQA batch fraction of the cotrain arm")
    parser.add_argument("--quick", action="store_true", help="tiny settings (CI smoke run; numbers meaningless)")
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild the table and plot from OUT")


def run(args: argparse.Namespace) -> int:
    s = QUICK if args.quick else FULL
    s = replace(
        s,
        stage2_steps=args.steps or s.stage2_steps,
        stage1_steps=args.stage1_steps if args.stage1_steps is not None else s.stage1_steps,
        eval_episodes=args.eval_episodes or s.eval_episodes,
        eval_videos=0,
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        data_root = args.from_demo or out
        phases: list[Phase] = []
        if args.from_demo is None:
            phases += [p for p in build_phases(s, out) if p.name.startswith("collect_") or p.name == "prior"]
        elif not (Paths(args.from_demo).prior / "config.json").exists():
            print(f"--from-demo {args.from_demo}: no prior/ there; run the demo first", file=sys.stderr)
            return 2
        phases.append(
            Phase("no_prior", [sys.executable, "-m", "training.prior", "--out", str(out / "no_prior"), "--steps", "0",
                               "--image-size", str(s.image_size), "--hidden-size", str(s.prior_hidden), "--twin-scenes", "0",
                               "--no-progress"],
                  "the no-prior control: same architecture and vocabulary, random init (0 pretraining steps)", 0.3)
        )
        for arm in args.arms:
            for seed in args.seeds:
                phases += arm_phases(arm, seed, s, out, Paths(data_root), vqa_ratio=args.vqa_ratio)
        header = {"main_command": "vla-robot study " + " ".join(sys.argv[2:]), "config": s.as_dict(),
                  "arms": args.arms, "seeds": args.seeds}
        expected = 60.0 * (len(args.arms) * len(args.seeds) * (2.0 if args.quick else 8.0))
        try:
            run_phases(phases, out / "logs", out / "study_manifest.json", expected, header=header,
                       env={"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        except PhaseRejected as exc:
            print(f"vla-robot study: {exc}", file=sys.stderr)
            return 2
        except PhaseFailed as exc:
            print(f"\n{exc}", file=sys.stderr)
            return 1
    rows = summarise_study(out)
    paths = write_outputs(rows, out, n_cards=s.n_cards)
    print(paths["table"].read_text())
    print(f"results: {paths['json']}\nplot: {paths['plot']}")
    return 0
