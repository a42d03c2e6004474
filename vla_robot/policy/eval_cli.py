"""`vla-robot eval`: closed-loop GrinningFace evaluation of a policy bundle in the twin.

    vla-robot eval --policy runs/demo/bundle --robot sim --split val --episodes 20 --out out/eval
    vla-robot eval --policy PATH --robot sim --split both --episodes 5 --through-ros

Writes OUT/report.json (Exe. SR, Rec. SR, SR per split, episode length, safety events,
latency), OUT/videos/*.mp4 (the first --videos episodes of each split) and OUT/summary.png.
"""

from __future__ import annotations

import argparse
import json
import time

from vla_robot.policy.evaluation import SPLIT_CHOICES
from vla_robot.policy.runtime_args import add_runtime_arguments, runtime_config_from_args, with_policy_rate
from vla_robot.policy.scene import choose_scene

ARMS = ("widowx250", "so100")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy bundle directory (from vla-train, or an expert-replay bundle)")
    parser.add_argument("--robot", default="sim", help="'sim' (the twin; the only robot eval supports) or 'sim:so100'")
    parser.add_argument("--split", default="train", choices=SPLIT_CHOICES, help="emoji split(s) to evaluate on")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per split")
    parser.add_argument("--seed", type=int, default=100_000, help="first episode seed (episode i uses seed + i)")
    parser.add_argument("--max-steps", type=int, default=120, help="control steps per episode at most")
    add_scene_arguments(parser)
    parser.add_argument("--videos", type=int, default=2, help="episodes per split saved as MP4")
    parser.add_argument("--through-ros", action="store_true",
                        help="run through the ROS 2 nodes (twin arm + cameras + policy node over DDS) instead of in-process")
    parser.add_argument("--out", default="out/eval", help="output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_runtime_arguments(parser, asynchronous_default=False)


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """The twin scene flags of `eval` and `deploy --robot sim`; unset, they take the bundle's scene."""
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"),
                        help="twin camera resolution (default: the bundle's training scene, else 224 224)")
    parser.add_argument("--cards", type=int, default=None,
                        help="emoji cards on the table (default: the bundle's training scene, else 4)")
    parser.add_argument("--layout-seed", type=int, default=None,
                        help="fix the card/cube layout of every episode (only the emojis change); -1: a random "
                        "layout per episode (default: the bundle's training scene, else random)")


def parse_robot(value: str, policy_robot: str = "") -> str:
    if value == "sim":
        return policy_robot or "widowx250"
    if value.startswith("sim:") and value[4:] in ARMS:
        return value[4:]
    raise SystemExit(f"--robot {value!r}: evaluation runs in the twin; use 'sim', 'sim:widowx250' or 'sim:so100'")


def run(args: argparse.Namespace) -> int:
    from vla_robot.policy.evaluation import EvalConfig, evaluate_in_process
    from vla_robot.policy.loading import load_policy
    from vla_robot.policy.report import build_report, write_outputs

    runtime = runtime_config_from_args(args)
    policy = load_policy(args.policy, runtime)
    runtime = with_policy_rate(runtime, args, policy)
    scene = choose_scene(policy, args.cards, args.layout_seed, args.image_size)
    print(scene.describe())
    cfg = EvalConfig(robot=parse_robot(args.robot, getattr(policy, "robot", "")), split=args.split,
                     episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
                     image_size=scene.image_size, n_cards=scene.n_cards, videos=args.videos,
                     twin_overrides=scene.twin_overrides())
    t0 = time.perf_counter()
    if args.through_ros:
        from vla_robot.ros.policy_eval import evaluate_through_ros

        records, runtime_report = evaluate_through_ros(policy, cfg, runtime, progress=not args.quiet)
        mode = "through_ros"
    else:
        records, runtime_report = evaluate_in_process(policy, cfg, runtime, progress=not args.quiet)
        mode = "in_process"
    meta = {"mode": mode, "policy": policy.describe(), "eval": cfg.__dict__, "scene_sources": scene.sources,
            "runtime_config": runtime.as_dict(),
            "wall_s": time.perf_counter() - t0}
    report = build_report(records, runtime_report, meta)
    paths = write_outputs(report, records, args.out, fps=runtime.control_hz)
    for split, m in report["metrics"].items():
        print(f"{split:5s}  episodes {m['episodes']:3d}  Exe.SR {m['exe_sr']:.2f}  Rec.SR {m['rec_sr']:.2f}  "
              f"SR {m['sr']:.2f}  len {m['episode_length_mean']:.1f}  safety {json.dumps(m['safety_events'])}")
    print(f"report: {paths['report']}  summary: {paths['summary']}")
    return 0
