"""`vla-train`: train a VLA on episode stores and write a policy bundle.

    vla-train --config my.yaml strategy.name=lora optim.lr_head=3e-4
    vla-train data.stores=[demo.zarr] model.family=paligemma model.backbone=google/paligemma-3b-pt-224 \\
              strategy.name=staged strategy.stage1.stores=[bridge.zarr:0.7,own.zarr:0.3]
    vla-train --make-tiny-backbone paligemma /tmp/tiny   # a random local backbone for trying things out
    vla-train --export-bundle runs/x                     # bundle from a run's newest checkpoints (also FSDP)

Multi-GPU/multi-node: `accelerate launch --config_file my_accel.yaml -m training.cli --config my.yaml`
(docs/training.md: DDP, FSDP with distributed.sharding=fsdp, torchrun and SLURM).
"""

from __future__ import annotations

import argparse
import os
import sys

from training.config import ConfigError, STRATEGIES, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML or JSON TrainConfig file (see docs/training.md)")
    p.add_argument("overrides", nargs="*", help=f"dotted key=value overrides; strategies: {', '.join(STRATEGIES)}")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--check", action="store_true",
                   help="run every check that needs no training (config, stores, chunk length, stats) and exit")
    p.add_argument("--make-tiny-backbone", nargs=2, metavar=("FAMILY", "DIR"),
                   help="write a tiny random backbone of FAMILY (paligemma|qwen2_vl|qwen2_5_vl|idefics3) to DIR and exit")
    p.add_argument("--image-size", type=int, default=32, help="image size of --make-tiny-backbone")
    p.add_argument("--export-bundle", metavar="RUN_DIR",
                   help="write the policy bundle of RUN_DIR from its newest checkpoints (replicated or sharded) and exit")
    p.add_argument("--out", help="bundle directory for --export-bundle (default: RUN_DIR/bundle)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.make_tiny_backbone:
        from vla_robot.models.tiny import make_tiny_backbone

        print(make_tiny_backbone(args.make_tiny_backbone[0], args.make_tiny_backbone[1], image_size=args.image_size))
        return 0
    try:
        if args.export_bundle:
            from training.export import export_bundle

            print(f"bundle: {export_bundle(args.export_bundle, args.out)}")
            return 0
        cfg = load_config(args.config, args.overrides)
        if args.print_config:
            import yaml

            from training.config import _plain

            print(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))
            return 0
        if args.check:
            from training.trainer import prepare

            schema, model_cfg, stats, stores = prepare(cfg)
            print(f"ok: {len(stores)} store(s), {sum(s.num_episodes for s in stores)} episodes, "
                  f"action_dim={model_cfg.action_dim} state_dim={model_cfg.state_dim} cameras={list(model_cfg.cameras)} "
                  f"gripper_dims={list(model_cfg.gripper_dims)}")
            return 0
        from training.trainer import train

        train(cfg)
    except ConfigError as exc:
        print(f"vla-train: config error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
