"""`python -m training.prior --out DIR`: pretrain the tiny VLM prior on synthetic emoji VQA.

The output directory loads with ``AutoModelForImageTextToText.from_pretrained(DIR)`` and
``AutoProcessor.from_pretrained(DIR)``; pass it to ``vla-train`` as the backbone. Engineers
with a hub VLM skip this phase and give the hub id instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from training.prior.pretrain import PriorConfig, pretrain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.prior",
        description="Pretrain a tiny VLM of a real transformers architecture on synthetic emoji "
        "vision-language data (identify / where / caption) covering all emojis, train and val.",
    )
    defaults = PriorConfig()
    for f in fields(PriorConfig):
        value = getattr(defaults, f.name)
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=f"(default: {value})")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default: {value})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(PriorConfig)}
    try:
        cfg = PriorConfig(**values)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = pretrain(cfg, progress=not args.no_progress)
    print(json.dumps({"out": cfg.out, "train_seconds": summary["train_seconds"], "probe": summary["probe"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
