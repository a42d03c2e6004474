"""Twin throughput and scripted-expert success.

    python bench/bench_twin.py                       # quick: ~1 min, 10 expert episodes per arm
    python bench/bench_twin.py --expert-episodes 100  # the issue's 100-episode bar per arm
    python bench/bench_twin.py --one-core             # pin to CPU 0, single-threaded llvmpipe

Measures, per arm: raw physics steps/s; control steps (one 10 Hz period = 50 physics steps)
without rendering, the baseline the render rows are compared with; step + one 224x224 render;
step + two 640x480 renders (third-person and wrist). Frames/s are control steps per wall
second; the real-time factor is frames/s divided by the control rate. Writes
bench/results/twin.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "twin.json"
TARGET_FPS_224 = 30.0


def _pin_one_core() -> None:
    os.environ["LP_NUM_THREADS"] = "1"  # llvmpipe (Mesa's CPU rasteriser) would use every core
    os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _timed(fn, seconds: float, min_iters: int = 5) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - start


def bench_arm(robot: str, seconds: float) -> dict:
    import mujoco
    import numpy as np

    from sim import ScriptedExpert, Twin, TwinConfig, TwinRobot

    out = {}
    for label, cameras, size in [("step", ("third_person",), (224, 224)),
                                 ("step+1x224x224", ("third_person",), (224, 224)),
                                 ("step+2x640x480", ("third_person", "wrist"), (640, 480))]:
        twin = Twin(TwinConfig(robot=robot, cameras=cameras, image_size=size))
        robot_if, expert = TwinRobot(twin), ScriptedExpert(twin)
        robot_if.connect()
        seed = [0]

        def control_step() -> None:
            if expert.done or twin.steps >= twin.config.max_steps:
                seed[0] += 1
                twin.reset(seed[0])
            robot_if.send_joint_targets(expert.act())
            if label != "step":
                for cam in cameras:
                    twin.render(cam)

        if label == "step":
            twin.reset(0)
            m, d = twin.model, twin.data
            n, dt = _timed(lambda: [mujoco.mj_step(m, d) for _ in range(100)], seconds)
            out["physics_steps_per_s"] = 100 * n / dt
        control_step()  # warm-up: renderer context, first upload
        n, dt = _timed(control_step, seconds)
        fps = n / dt
        out[label] = {"frames_per_s": fps, "real_time_factor": fps / twin.config.control_rate_hz}
        twin.close()
    base = out["step"]["frames_per_s"]
    for label in ("step+1x224x224", "step+2x640x480"):
        out[label]["ratio_vs_step"] = out[label]["frames_per_s"] / base
    return out


def expert_success(robot: str, episodes: int, split: str, task: str = "grinning_face") -> dict:
    from tqdm import tqdm

    from sim import ScriptedExpert, Twin, TwinConfig, TwinRobot, summarise

    twin = Twin(TwinConfig(robot=robot, task=task, split=split, cameras=("third_person",), image_size=(64, 48)))
    robot_if, expert = TwinRobot(twin), ScriptedExpert(twin)
    robot_if.connect()
    results, start = [], time.perf_counter()
    for seed in tqdm(range(episodes), desc=f"expert {robot}", unit="ep", leave=False):
        twin.reset(seed)
        while not expert.done and twin.steps < twin.config.max_steps:
            robot_if.send_joint_targets(expert.act())
        robot_if.hold(3)
        results.append(twin.evaluate())
    twin.close()
    summary = summarise(results)
    summary["failed_seeds"] = [s for s, r in enumerate(results) if not r["success"]]
    summary["wall_s"] = time.perf_counter() - start
    summary["split"] = split
    summary["task"] = task
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per row (default: %(default)s)")
    parser.add_argument("--expert-episodes", type=int, default=10, help="seeded expert episodes per arm (default: %(default)s)")
    parser.add_argument("--split", choices=("train", "val"), default="train", help="emoji split for the expert run")
    parser.add_argument("--task", choices=("grinning_face", "reach", "push"), default="grinning_face", help="task for the expert run")
    parser.add_argument("--skip-throughput", action="store_true", help="only run the expert episodes")
    parser.add_argument("--robots", default="widowx250,so100", help="comma-separated arms (default: %(default)s)")
    parser.add_argument("--one-core", action="store_true", help="pin to one CPU and one llvmpipe thread")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output (default: bench/results/twin.json)")
    args = parser.parse_args(argv)
    if args.one_core:
        _pin_one_core()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco

    robots = args.robots.split(",")
    report = {
        "machine": {"cpu_count": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "one_core": args.one_core, "python": sys.version.split()[0], "mujoco": mujoco.__version__,
                    "platform": platform.platform(), "gl": os.environ.get("MUJOCO_GL")},
        "baseline": "step (expert control step, 50 physics steps, no rendering)",
        "target_fps_step_plus_224": TARGET_FPS_224,
        "throughput": {},
        "expert": {},
    }
    if not args.skip_throughput:
        for robot in robots:
            report["throughput"][robot] = bench_arm(robot, args.seconds)
    if args.expert_episodes > 0:
        for robot in robots:
            report["expert"][robot] = expert_success(robot, args.expert_episodes, args.split, args.task)

    core = "1 core" if args.one_core else f"{len(report['machine']['affinity'] or [])} cores"
    print(f"\nTwin throughput ({core}, MuJoCo {mujoco.__version__}, {os.environ.get('MUJOCO_GL')}); 10 Hz control")
    print(f"{'arm':10s} {'row':16s} {'frames/s':>9s} {'RTF':>7s} {'vs step':>8s}")
    for robot, t in report["throughput"].items():
        print(f"{robot:10s} {'physics':16s} {t['physics_steps_per_s']:9.0f} {'':>7s} {'':>8s}  (mj_step/s)")
        for label in ("step", "step+1x224x224", "step+2x640x480"):
            row = t[label]
            ratio = f"{row['ratio_vs_step']:.3f}" if "ratio_vs_step" in row else "1.000"
            print(f"{robot:10s} {label:16s} {row['frames_per_s']:9.1f} {row['real_time_factor']:7.2f} {ratio:>8s}")
        ok = t["step+1x224x224"]["frames_per_s"] >= TARGET_FPS_224
        print(f"{'':10s} target >= {TARGET_FPS_224:.0f} fps step+224: {'met' if ok else 'NOT met'}")
    for robot, s in report["expert"].items():
        print(f"expert {robot:10s} {s['task']} {s['episodes']} episodes ({s['split']}): SR {s['sr']:.2%}  Exe. SR {s['exe_sr']:.2%}  "
              f"Rec. SR {s['rec_sr']:.2%}  failed seeds {s['failed_seeds']}  ({s['wall_s']:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
