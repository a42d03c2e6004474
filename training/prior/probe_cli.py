"""`python -m training.prior.probe_cli MODEL`: the emoji VQA probe on a prior or a trained VLA.

MODEL is a `from_pretrained` VLM directory (a prior), or a policy bundle from `vla-train`
(its merged ``backbone/`` and ``processor/`` are probed): how much emoji knowledge
survived VLA training is the study's prior-survival metric.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_for_probe(path: str | Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if (path / "bundle.json").exists():
        model_dir, proc_dir = path / "backbone", path / "processor"
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(
                f"{path} is a policy bundle without a merged backbone/ (saved with merge_lora=false?); "
                "the probe needs the full backbone weights"
            )
    elif (path / "config.json").exists():
        model_dir = proc_dir = path
    else:
        raise FileNotFoundError(f"{path} is neither a from_pretrained VLM directory nor a policy bundle")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(proc_dir)
    size = processor.image_processor.size
    image_size = int(size.get("height", size.get("shortest_edge", 64)))
    return model, processor, image_size


def main(argv: list[str] | None = None) -> int:
    from training.prior.probe import run_probe

    parser = argparse.ArgumentParser(prog="python -m training.prior.probe_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="VLM directory or policy bundle")
    parser.add_argument("--per-emoji", type=int, default=2, help="renders per emoji and question kind")
    parser.add_argument("--twin-scenes", type=int, default=20, help="twin renders per split for the where probe (0: off)")
    parser.add_argument("--layout-seed", type=int, default=None, help="fixed twin layout of the where probe (as the demo's)")
    parser.add_argument("--out", help="write the result JSON here")
    args = parser.parse_args(argv)
    model, processor, image_size = load_for_probe(args.model)
    result = run_probe(model, processor, image_size, n_per_emoji=args.per_emoji, twin_scenes=args.twin_scenes,
                       twin_layout_seed=args.layout_seed).as_dict()
    result["model"] = str(args.model)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
