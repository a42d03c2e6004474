"""`vla-robot deploy`: drive an arm, or the twin, with a policy bundle.

    vla-robot deploy --robot sim --policy runs/demo/bundle                 # composed ROS 2 nodes, one process
    vla-robot deploy --robot sim --policy PATH --direct                    # no ROS at all: the loop on the twin
    vla-robot deploy --robot widowx --port /dev/ttyUSB0 --camera third_person=realsense: \\
        --policy PATH --instruction "put the cube on the grinning face"

On a robot PC with ROS 2 installed, `ros2 launch vla_robot_bringup deploy.launch.py
robot:=widowx policy:=PATH` starts the same nodes as separate processes (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from vla_robot.policy.eval_cli import add_scene_arguments
from vla_robot.policy.runtime_args import (HARDWARE_VELOCITY_SCALE, add_runtime_arguments, runtime_config_from_args,
                                          with_policy_rate)

HARDWARE = ("widowx", "so100")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy bundle directory")
    parser.add_argument("--robot", default="sim",
                        help="sim (the twin, WidowX 250), sim:so100, or hardware: widowx | so100")
    parser.add_argument("--instruction", default="", help="language instruction (sim: defaults to the episode's)")
    sim = parser.add_argument_group("sim")
    sim.add_argument("--direct", action="store_true", help="run the control loop on the twin without ROS nodes")
    sim.add_argument("--episodes", type=int, default=1, help="episodes to run")
    sim.add_argument("--seconds", type=float, default=12.0, help="sim seconds per episode at most")
    sim.add_argument("--seed", type=int, default=0, help="first episode seed")
    sim.add_argument("--split", default="train", choices=("train", "val"), help="emoji split of the table")
    add_scene_arguments(sim)
    sim.add_argument("--rate-factor", type=float, default=1.0, help="sim seconds per wall second (1 = real time)")
    sim.add_argument("--out", default="out/deploy", help="where the run report and videos go")
    hw = parser.add_argument_group("hardware")
    hw.add_argument("--port", default="", help="serial port of the arm bus (virtual:// for a dry run)")
    hw.add_argument("--calibration", default="", help="SO-100 calibration JSON")
    hw.add_argument("--camera", action="append", default=[], metavar="NAME=SOURCE:DEVICE",
                    help="a camera the policy needs, e.g. third_person=realsense:123456 or wrist=opencv:/dev/video2")
    add_runtime_arguments(parser, asynchronous_default=True)


def run(args: argparse.Namespace) -> int:
    from vla_robot.policy.loading import load_policy

    runtime = runtime_config_from_args(args)
    if args.robot in HARDWARE and args.velocity_scale is None:
        runtime = dataclasses.replace(runtime, safety=dataclasses.replace(runtime.safety,
                                                                          velocity_scale=HARDWARE_VELOCITY_SCALE))
        print(f"velocity scale {HARDWARE_VELOCITY_SCALE} of the joint limits on hardware (--velocity-scale to change)")
    policy = load_policy(args.policy, runtime)
    runtime = with_policy_rate(runtime, args, policy)
    print(f"policy: {json.dumps(policy.describe())}")
    if args.robot == "sim" or args.robot.startswith("sim:"):
        return _run_sim(args, policy, runtime)
    if args.robot in HARDWARE:
        return _run_hardware(args, policy, runtime)
    raise SystemExit(f"--robot {args.robot!r} unknown; choose sim, sim:so100, {', '.join(HARDWARE)}")


def _run_sim(args, policy, runtime) -> int:
    from vla_robot.policy.eval_cli import parse_robot
    from vla_robot.policy.evaluation import EvalConfig
    from vla_robot.policy.report import build_report, write_outputs
    from vla_robot.policy.scene import choose_scene

    scene = choose_scene(policy, args.cards, args.layout_seed, args.image_size)
    print(scene.describe())
    cfg = EvalConfig(robot=parse_robot(args.robot, getattr(policy, "robot", "")), split=args.split,
                     episodes=args.episodes, seed=args.seed, max_steps=max(1, int(args.seconds * runtime.control_hz)),
                     image_size=scene.image_size, n_cards=scene.n_cards, videos=args.episodes,
                     twin_overrides=scene.twin_overrides())
    t0 = time.perf_counter()
    if args.direct:
        from vla_robot.policy.evaluation import evaluate_in_process

        records, report = evaluate_in_process(policy, cfg, runtime, realtime=True)
        mode = "deploy_direct"
    else:
        from vla_robot.ros.policy_eval import evaluate_through_ros

        records, report = evaluate_through_ros(policy, cfg, runtime, rate_factor=args.rate_factor)
        mode = "deploy_ros_composed"
    full = build_report(records, report, {"mode": mode, "policy": policy.describe(), "wall_s": time.perf_counter() - t0})
    paths = write_outputs(full, records, Path(args.out), fps=runtime.control_hz)
    _print_status(report)
    for r in records:
        print(f"episode seed {r['seed']}: {r['instruction']!r} -> success={r['success']} steps={r['steps']}")
    print(f"report: {paths['report']}")
    return 0


def _print_status(report: dict) -> None:
    lat = report.get("latency_ms", {})
    parts = [f"{k} p50 {v['p50_ms']:.1f} / p99 {v['p99_ms']:.1f} ms" for k, v in lat.items()
             if k in ("preprocess", "vlm", "head", "total", "end_to_end")]
    print("latency: " + "; ".join(parts))
    print(f"period jitter p99: {report.get('period_jitter_ms', {}).get('p99', 0):.2f} ms")
    print("safety: " + json.dumps({k: v for k, v in report.get("safety", {}).items() if v}))


def _parse_camera(spec: str) -> tuple[str, str, str]:
    try:
        name, rest = spec.split("=", 1)
        source, device = (rest.split(":", 1) + [""])[:2]
    except ValueError:
        raise SystemExit(f"--camera {spec!r}: expected NAME=SOURCE:DEVICE (SOURCE realsense or opencv)") from None
    if source not in ("realsense", "opencv"):
        raise SystemExit(f"--camera {spec!r}: source must be realsense or opencv")
    return name, source, device


def _run_hardware(args, policy, runtime) -> int:
    from vla_robot.ros.arm_node import ArmNode
    from vla_robot.ros.camera_node import CameraNode
    from vla_robot.ros.policy_node import PolicyNode
    from vla_robot.ros.executor import ComposedProcess
    from vla_robot.ros.policy_stack import policy_params

    cams = dict((n, (s, d)) for n, s, d in map(_parse_camera, args.camera))
    missing = [c for c in policy.camera_names if c not in cams]
    if missing:
        raise SystemExit(f"the policy needs cameras {missing}; add --camera NAME=SOURCE:DEVICE for each")
    if not args.instruction:
        raise SystemExit("--instruction is required on hardware")
    proc = ComposedProcess()
    ctx = proc.context
    try:
        arm_params = {"robot": args.robot, "port": args.port, "cmd_timeout_latch": True}
        if args.calibration:
            arm_params["calibration_path"] = args.calibration
        arm = proc.add(ArmNode(arm_params, context=ctx))
        for name in policy.camera_names:
            source, device = cams[name]
            proc.add(CameraNode({"source": source, "camera_name": name, **({"device": device} if device else {})},
                                name=f"camera_{name}", context=ctx))
        params = policy_params(runtime, arm.spec.name, 1.0)
        params.update(instruction=args.instruction, autostart=True)
        node = proc.add(PolicyNode(params, policy=policy, context=ctx))
        proc.start()
        print("running; Ctrl-C stops (the arm holds its last commanded pose, torque on). e-stop: "
              "ros2 service call /arm/estop std_srvs/srv/Trigger (or /policy/estop); a software e-stop does not "
              "replace a power-cutting hardware one (docs/deploy.md)")
        t_end = time.time() + args.seconds if args.seconds > 0 else float("inf")
        while time.time() < t_end:
            time.sleep(1.0)
            _print_status(node.loop.report())
    except KeyboardInterrupt:
        pass
    finally:
        proc.shutdown()
    return 0
