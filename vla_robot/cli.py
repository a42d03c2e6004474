"""`vla-robot`: the operator- and engineer-facing entry point.

Each subcommand lives in the module that owns its job and is imported only when used,
so `vla-robot --help` stays instant and a missing optional extra (ROS, train) only
breaks the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module exposing add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vla_robot.demo.cli", "the main job on the embedded default (twin, no robot, no GPU, no hub)"),
    "rollout": ("sim.rollout_cli", "run the scripted expert in the twin and save a video"),
    "collect": ("vla_robot.recorder.collect_cli", "record demonstrations through the ROS 2 nodes (sim: composed in one process)"),
    "console": ("vla_robot.ros.recorder_console", "keys and live status for a running recorder (its own terminal; ros2 launch)"),
    "deploy": ("vla_robot.policy.deploy_cli", "drive an arm (or the twin) with a policy bundle"),
    "eval": ("vla_robot.policy.eval_cli", "closed-loop evaluation of a policy bundle in the twin"),
    "study": ("vla_robot.demo.study_cli", "compare update strategies on the GrinningFace twin"),
}


# Clients of nodes the operator started (ros2 launch): they join the operator's ROS domain.
OPERATOR_DOMAIN = {"console"}


def _local_dds_defaults() -> None:
    """The embedded default never lets DDS discovery leave this host."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "61")
    os.environ.setdefault("MUJOCO_GL", "egl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vla-robot",
        description="Collect demonstrations, deploy VLA policies and evaluate them on the MuJoCo twin.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose one of {', '.join(SUBCOMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = SUBCOMMANDS[name]
    if name not in OPERATOR_DOMAIN:
        _local_dds_defaults()
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"vla-robot {name}", description=help_text)
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
