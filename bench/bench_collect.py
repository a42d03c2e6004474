"""Collection benchmark: two 640x480 cameras + joints + actions through real DDS into the recorder.

    python bench/bench_collect.py            # 15 s at 30 Hz + a short rate sweep (< 2 min)
    python bench/bench_collect.py --full     # 60 s at 30 Hz + the sweep
    python bench/bench_collect.py --seconds 30 --rate 30 --sweep 30,45,60

A publisher process (two camera topics of 640x480 rgb8 Images with changing content,
JointState and JointTrajectory, stamped on a regular schedule like a camera's device clock) talks over DDS on
loopback to the recorder node in this process, which aligns them to the control rate and
writes JPEG (q90) episodes into a Zarr store.

Reported: dropped steps (gaps + queue overflows + rejected; target 0), recorder lag
p50/p99 (frame arrival -> written to the store), CPU % of each process, and the highest
camera rate of the sweep sustained with 0 drops.

Baseline (same run): ``store-only``, the same frames appended straight to an episode
store with no DDS and no alignment, paced at the same rate. The ratio recorder CPU /
store-only CPU is the cost of the ROS path.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
W, H = 640, 480
CAMERAS = ("front", "wrist")


def frames(n: int = 8) -> list[np.ndarray]:
    """A few textured frames (JPEG cost like a real scene, not a flat colour)."""
    rng = np.random.default_rng(0)
    base = (rng.random((H // 8, W // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    return [np.roll(base, 13 * i, axis=1) for i in range(n)]


def publisher(rate: float, seconds: float, qos: str, ready, go, done, result) -> None:
    import rclpy
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_robot.robots.specs import WIDOWX_250
    from vla_robot.ros.conversions import image_to_msg, joint_state_msg, trajectory_msg
    from vla_robot.ros.qos import COMMAND_QOS, joint_qos, sensor_qos

    SENSOR_QOS = sensor_qos(qos)

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    pubs = {c: node.create_publisher(Image, f"{c}/image_raw", SENSOR_QOS) for c in CAMERAS}
    state_pub = node.create_publisher(JointState, "joint_states", joint_qos(qos))
    cmd_pub = node.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
    imgs = frames()
    names = WIDOWX_250.joint_names
    home = np.array(WIDOWX_250.home)
    ready.set()
    go.wait()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    k = 0
    next_t = t0
    late = 0
    stamp0 = node.get_clock().now().nanoseconds * 1e-9
    while time.monotonic() - t0 < seconds:
        stamp = stamp0 + k / rate  # a device clock: capture times are regular even when delivery is late
        q = home + 0.01 * np.sin(k / 10)
        state_pub.publish(joint_state_msg(names, q, np.zeros(7), stamp))
        for i, c in enumerate(CAMERAS):
            pubs[c].publish(image_to_msg(imgs[(k + i) % len(imgs)], stamp, c))
        cmd_pub.publish(trajectory_msg(names, q, stamp))
        k += 1
        next_t += 1.0 / rate
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    wall = time.monotonic() - t0
    result.put({"published": k, "late": late, "cpu_pct": 100 * (time.process_time() - cpu0) / wall,
                "last_stamp": stamp0 + (k - 1) / rate})
    done.wait(30)  # stay alive until the recorder has taken everything (reliable delivery needs the writer)
    node.destroy_node()
    rclpy.shutdown()


def run_recorder(rate: float, seconds: float, store: str, qos: str) -> dict:
    """One recording of ``seconds`` at ``rate`` through DDS; returns drops, lag and CPU."""
    from vla_robot.ros.executor import ComposedProcess
    from vla_robot.ros.recorder_node import RecorderNode

    ctx = mp.get_context("spawn")
    ready, go, done, result = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=publisher, args=(rate, seconds, qos, ready, go, done, result), daemon=True)
    proc.start()
    ros = ComposedProcess(threads=6)
    rec = ros.add(RecorderNode({"store": store, "cameras": ",".join(CAMERAS), "width": W, "height": H,
                                "control_rate_hz": rate, "instruction": "benchmark", "max_wait_s": 0.5,
                                "queue_size": 256, "sensor_qos": qos}, context=ros.context))
    ros.start()
    ready.wait(30)
    time.sleep(2.0)  # discovery
    rec.start_episode()
    cpu0, t0 = time.process_time(), time.monotonic()
    go.set()
    pub = result.get(timeout=seconds + 60)
    drain = time.monotonic() + 10.0  # let the recorder take in what is still queued in DDS
    while rec.last_state_stamp < pub["last_stamp"] - 1e-6 and time.monotonic() < drain:
        time.sleep(0.05)
    drained = rec.last_state_stamp >= pub["last_stamp"] - 1e-6
    done.set()
    time.sleep(0.3)
    rec.save_episode(True)
    wall = time.monotonic() - t0
    cpu = 100 * (time.process_time() - cpu0) / wall
    status = rec.status()
    proc.join(10)
    ros.shutdown()
    from vla_robot.data import EpisodeStore

    stamps = EpisodeStore.open(store).read("stamps/state", 0)[:, 0]
    expected = int(round((pub["last_stamp"] - stamps[0]) * rate)) + 1  # from the first step the recorder got
    skipped_at_start = pub["published"] - expected
    drops = (sum(status["gaps"].values()) + status["queue_overflows"] + sum(status["rejected"].values())
             + status["write_errors"])
    # steps after the first recorded one that never reached the store (e.g. lost in a DDS history) count too
    return {
        "rate_hz": rate, "seconds": seconds, "qos": qos, "published_steps": pub["published"], "publisher_late": pub["late"],
        "written_steps": status["frames"], "dropped": int(drops) + max(int(expected - status["frames"]) - int(drops), 0), "gaps": status["gaps"],
        "out_of_order": status["out_of_order"], "warmup_steps": status["warmup_steps"],
        "trimmed_steps": status["trimmed_steps"],
        "queue_overflows": status["queue_overflows"], "lag_p50_ms": 1e3 * status["lag_p50_s"],
        "lag_p99_ms": 1e3 * status["lag_p99_s"], "recorder_cpu_pct": cpu, "publisher_cpu_pct": pub["cpu_pct"],
        "unrecorded_steps": int(expected - status["frames"]),
        "published_before_first_received": int(skipped_at_start), "last_state_received": bool(drained),
    }


def run_store_only(rate: float, seconds: float, store: str) -> dict:
    """Baseline: the same frames appended straight to a store, paced at ``rate``."""
    from vla_robot.data import CameraSpec, EpisodeStore, StoreSchema
    from vla_robot.robots.specs import WIDOWX_250

    schema = StoreSchema(robot="widowx250", joint_names=WIDOWX_250.joint_names, control_rate_hz=rate,
                         action_space={"type": "joint_position", "names": list(WIDOWX_250.joint_names)},
                         cameras=[CameraSpec(c, W, H, encoding="jpeg", quality=90) for c in CAMERAS],
                         state_dim=7, action_dim=7)
    s = EpisodeStore.create(store, schema)
    imgs = frames()
    ep = s.begin_episode("benchmark")
    cpu0, t0 = time.process_time(), time.monotonic()
    k, next_t = 0, t0
    while time.monotonic() - t0 < seconds:
        now = time.time()
        q = np.array(WIDOWX_250.home, np.float32)
        ep.append({"state": q, "action": q, "images": {c: imgs[(k + i) % len(imgs)] for i, c in enumerate(CAMERAS)},
                   "stamp": now, "receive_stamp": now})
        k += 1
        next_t += 1.0 / rate
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    ep.commit(True)
    wall = time.monotonic() - t0
    return {"rate_hz": rate, "steps": k, "cpu_pct": 100 * (time.process_time() - cpu0) / wall}


def main() -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "77")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="main run length at --rate")
    parser.add_argument("--rate", type=float, default=30.0, help="camera/joint/control rate of the main run (Hz)")
    parser.add_argument("--full", action="store_true", help="60 s main run (the issue's benchmark)")
    parser.add_argument("--sweep", default="30,45,60", help="camera rates to try for the 0-drop maximum ('' skips)")
    parser.add_argument("--sweep-seconds", type=float, default=6.0)
    parser.add_argument("--qos", default="reliable", choices=["reliable", "sensor_data"],
                        help="image/joint QoS on both ends (sensor_data = best effort)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "collect.json"))
    args = parser.parse_args()
    seconds = 60.0 if args.full else args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        base = run_store_only(args.rate, min(seconds, 10.0), f"{tmp}/baseline.zarr")
        main_run = run_recorder(args.rate, seconds, f"{tmp}/main.zarr", args.qos)
        sweep = []
        for i, rate in enumerate(float(r) for r in args.sweep.split(",") if r):
            sweep.append(run_recorder(rate, args.sweep_seconds, f"{tmp}/sweep{i}.zarr", args.qos))
    zero_drop = [r["rate_hz"] for r in sweep + [main_run] if r["dropped"] == 0 and r["unrecorded_steps"] <= 2]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min_at_end": os.getloadavg()[0]},
        "config": {"cameras": len(CAMERAS), "size": f"{W}x{H}", "encoding": "jpeg q90"},
        "baseline_store_only": base,
        "recorder": main_run,
        "ratio_cpu_recorder_over_store_only": main_run["recorder_cpu_pct"] / max(base["cpu_pct"], 1e-9),
        "sweep": sweep,
        "highest_rate_zero_drops_hz": max(zero_drop) if zero_drop else None,
    }
    print(f"\ncollection benchmark: 2 x {W}x{H} rgb8 + joints over DDS ({args.qos} QoS), JPEG q90 store "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    print(f"{'run':<22}{'rate':>6}{'steps':>8}{'written':>9}{'dropped':>9}{'lag p50':>9}{'lag p99':>9}"
          f"{'rec CPU':>9}{'pub CPU':>9}")
    for name, r in [("recorder (main)", main_run)] + [(f"sweep {r['rate_hz']:g} Hz", r) for r in sweep]:
        print(f"{name:<22}{r['rate_hz']:>6g}{r['published_steps']:>8}{r['written_steps']:>9}{r['dropped']:>9}"
              f"{r['lag_p50_ms']:>7.0f}ms{r['lag_p99_ms']:>7.0f}ms{r['recorder_cpu_pct']:>8.0f}%{r['publisher_cpu_pct']:>8.0f}%")
    print(f"{'store-only (baseline)':<22}{base['rate_hz']:>6g}{base['steps']:>8}{'':>9}{'':>9}{'':>9}{'':>9}"
          f"{base['cpu_pct']:>8.0f}%")
    print(f"recorder CPU / store-only CPU = {result['ratio_cpu_recorder_over_store_only']:.2f}x; "
          f"highest camera rate with 0 drops: {result['highest_rate_zero_drops_hz']} Hz")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
