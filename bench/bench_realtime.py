"""Real-time recording benchmark: free-running cameras into the recorder, every process on its own.

    python bench/bench_realtime.py            # 120 s: 2 x 640x480 cameras + depth at 29.97 fps, joints 100 Hz
    python bench/bench_realtime.py --short    # 20 s and a 3-row sweep at 160x120 (about 2 min)
    python bench/bench_realtime.py --seconds 60 --sweep-seconds 10

Processes, as ``ros2 launch`` would start them on a robot PC:

* the recorder node from the installed entry point of a colcon build of ros2_ws
  (``recorder_node``, reliable sensor QoS, JPEG q90, teleop actions);
* an independent publisher (tests/independent_publisher.py: plain rclpy + numpy, no vla_robot)
  standing for realsense-ros (hardware-stamped colour + aligned depth on the camera's own
  crystal), xs_sdk (joint states at 100 Hz) and a 30 Hz teleop, default reliable QoS;
* this script, which calls the recorder's services like an operator's shell and reads its status.

Reported: steps recorded vs expected between start and save (goal: 0 lost; holes, warm-up and
trimmed steps listed), per-stream skew p50 / p99 (stamp of the stored sample minus its grid time),
recorder CPU (% of one core over the episode, from /proc), writer lag, and a drift/phase sweep
(shorter runs, several camera rates, drifts and phases).

Transport: every process gets the Fast DDS profile the launch files give their nodes
(config/fastdds_large_frames.xml, ``--dds-profile``); a second main run on Fast DDS' default
transports is the baseline for it (frames DDS reports lost at the recorder's readers are counted
in both).

Baseline, same run, same stamps: the previous alignment rule (nearest sample within 40 % of a
control period, grid from the first joint state) replayed offline on the stamps the publisher
logged, over the same start -> save window; and the new rule replayed offline the same way
(``align_samples``), which should agree with the live recorder.

The machine is a shared 2-core VM with other jobs running (load average in the JSON): CPU and lag
are upper bounds, steps lost a worst case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RATE = 30.0


def legacy_nearest_40(stamps: dict[str, np.ndarray], start: float, end: float, rate: float = RATE) -> dict:
    """The rule before issue #13, replayed: grid from the first joint state after ``start``; a step
    keeps each stream's nearest sample within 40 % of a control period, else it is a gap; steps before
    the first complete one are warm-up, after the last complete one trimmed."""
    period, tol = 1.0 / rate, 0.4 / rate
    state = stamps["state"]
    t0 = state[np.searchsorted(state, start)]
    grid = np.arange(t0, end + 1e-9, period)
    ok = np.ones(len(grid), bool)
    for values in stamps.values():
        i = np.clip(np.searchsorted(values, grid), 1, len(values) - 1)
        nearest = np.minimum(np.abs(values[i] - grid), np.abs(values[i - 1] - grid))
        ok &= nearest <= tol
    if not ok.any():
        return {"kept": 0, "lost_inside": 0, "warmup": len(grid), "trimmed": 0, "grid": len(grid)}
    first, last = int(np.argmax(ok)), len(ok) - 1 - int(np.argmax(ok[::-1]))
    return {"kept": int(ok.sum()), "lost_inside": int((~ok[first:last + 1]).sum()), "warmup": first,
            "trimmed": len(ok) - 1 - last, "grid": len(grid)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dds_environment(install, profile: str) -> dict[str, str]:
    """What the launch files put in every node's environment (launch/dds.launch.py): the package's
    Fast DDS profile, none (``none``: Fast DDS' defaults) or a given XML file."""
    if profile == "none":
        return {}
    path = install.share / "config" / "fastdds_large_frames.xml" if profile == "large_frames" else Path(profile)
    if not path.is_file():
        raise SystemExit(f"--dds-profile {profile}: {path} is not a file")
    return {"FASTDDS_DEFAULT_PROFILES_FILE": str(path)}


def run(install, workdir: Path, cameras: dict, seconds: float, size: tuple[int, int], depth: str,
        label: str, dds_profile: str = "large_frames") -> dict:
    """One recording: recorder process + publisher process; start, ``seconds`` of wall time, save.

    Both processes get ``dds_profile``'s environment, as ``ros2 launch collect.launch.py`` gives its
    camera and recorder nodes (the publisher stands for the launch file's camera drivers)."""
    from process_launch import ProcessLaunch, RosClient
    from recorder_rig import IndependentPublisher, RecorderProbe, publisher_config, recorder_node

    from vla_robot.data import EpisodeStore
    from vla_robot.recorder.aligner import AlignerConfig, align_samples

    workdir.mkdir(parents=True, exist_ok=True)
    store = str(workdir / f"{label}.zarr")
    cameras = {name: {**cam, "depth": name == depth} for name, cam in cameras.items()}
    launcher = ProcessLaunch(install, workdir / f"nodes_{label}")
    w, h = size
    dds_env = dds_environment(install, dds_profile)
    recorder = launcher.start(recorder_node(store, list(cameras), width=w, height=h, depth_cameras=depth), env=dds_env)
    config = publisher_config(cameras, 100.0, seconds + 60.0, workdir / f"{label}_stamps.json", size=size)
    publisher = IndependentPublisher(config, workdir, env={**os.environ, **dds_env})
    try:
        with RosClient(f"bench_{label}") as ros:
            probe = RecorderProbe(ros)
            streams = ["state", "action"] + [f"images/{c}" for c in cameras] + ([f"depth/{depth}"] if depth else [])
            probe.wait_streams(streams, timeout_s=120.0)
            time.sleep(1.0)
            cpu0, wall0 = cpu_seconds(recorder.process.pid), time.monotonic()
            start_clock = time.time()
            started = probe.call("start")
            if not started.success:
                raise RuntimeError(f"start refused: {started.message}")
            time.sleep(seconds)
            status_end = probe.status()
            end_clock = time.time()
            saved = probe.call("save", data=True, timeout_s=120.0)
            cpu = (cpu_seconds(recorder.process.pid) - cpu0) / (time.monotonic() - wall0)
            if not saved.success:
                raise RuntimeError(f"save refused: {saved.message}")
            status = probe.status()
        published = publisher.wait()
    finally:
        publisher.kill()
        launcher.shutdown()
    s = EpisodeStore.open(store)
    i = s.num_episodes - 1
    meta = s.episode_meta(i)
    alignment = meta["extra"]["alignment"]
    ep = s.read_episode(i, keys=["step_index"] + [f"skew/{st}" for st in s.schema.streams()])
    expected = int(round(alignment["requested_s"] * RATE))
    stamps = {k: np.asarray(v) for k, v in published["stamps"].items()}
    legacy = legacy_nearest_40(stamps, start_clock, end_clock)
    offline = align_samples({k: [(t, None) for t in v] for k, v in stamps.items()},
                            AlignerConfig(RATE, ("state", "action", *(f"images/{c}" for c in cameras),
                                                 *((f"depth/{depth}",) if depth else ()))),
                            start=alignment["grid_start"],
                            end=alignment["grid_start"] + (alignment["grid_steps"] - 1) / RATE)
    skew = {st: {"p50_ms": float(np.percentile(np.abs(ep[f"skew/{st}"]), 50) * 1e3),
                 "p99_ms": float(np.percentile(np.abs(ep[f"skew/{st}"]), 99) * 1e3),
                 "max_ms": float(np.abs(ep[f"skew/{st}"]).max() * 1e3)} for st in s.schema.streams()}
    return {
        "label": label, "dds_profile": dds_profile, "transport_lost": status.get("transport_lost", {}),
        "cameras": cameras, "size": list(size), "depth": depth, "seconds": seconds,
        "expected_steps": expected, "recorded_steps": s.episode_length(i), "grid_steps": alignment["grid_steps"],
        "lost_steps": max(expected - s.episode_length(i), 0), "hole_steps": meta["hole_steps"],
        "holes": alignment["holes"], "warmup_steps": alignment["warmup_steps"],
        "trimmed_steps": alignment["trimmed_steps"], "notes": alignment["notes"], "skew": skew,
        "recorder_cpu_pct": 100.0 * cpu, "lag_p50_ms": 1e3 * status["lag_p50_s"], "lag_p99_ms": 1e3 * status["lag_p99_s"],
        "queue_overflows": status["queue_overflows"], "level_during": status_end.get("level"),
        "late_samples": alignment.get("late", {}), "out_of_order": alignment.get("out_of_order", {}),
        "legacy_40pct": legacy, "offline_new_rule_steps": len(offline.steps),
        "offline_matches_live": [st.index for st in offline.steps] == list(ep["step_index"]),
    }


def print_main(r: dict) -> None:
    cams = ", ".join(f"{name} {cam['fps']} fps" for name, cam in r["cameras"].items())
    print(f"\n{r['label']}: {r['seconds']:.0f} s, cameras {cams} {r['size'][0]}x{r['size'][1]}"
          f"{' + depth' if r['depth'] else ''}, joints 100 Hz, teleop 30 Hz, DDS profile {r['dds_profile']}")
    print(f"  steps recorded {r['recorded_steps']} of {r['expected_steps']} expected (start -> save): "
          f"lost {r['lost_steps']}, holes {r['hole_steps']}, warm-up {r['warmup_steps']}, trimmed {r['trimmed_steps']}")
    legacy = r["legacy_40pct"]
    print(f"  baseline, old rule (nearest within 40 % of a period) on the same stamps: kept {legacy['kept']} of "
          f"{legacy['grid']} (lost inside {legacy['lost_inside']}, trimmed {legacy['trimmed']}, warm-up {legacy['warmup']})")
    print(f"  new rule replayed offline on the same stamps: {r['offline_new_rule_steps']} steps "
          f"({'same steps as live' if r['offline_matches_live'] else 'differs from live'})")
    print(f"  {'stream':<16}{'skew p50 ms':>12}{'p99 ms':>9}{'max ms':>9}")
    for name, v in r["skew"].items():
        print(f"  {name:<16}{v['p50_ms']:>12.1f}{v['p99_ms']:>9.1f}{v['max_ms']:>9.1f}")
    print(f"  recorder CPU {r['recorder_cpu_pct']:.0f} % of one core; writer lag p50 {r['lag_p50_ms']:.0f} ms, "
          f"p99 {r['lag_p99_ms']:.0f} ms; queue overflows {r['queue_overflows']}")
    lost = {k: v for k, v in r["transport_lost"].items() if v}
    print(f"  lost in DDS transport (message-lost events at the recorder's readers): {lost or 'none'}")
    late = {k: v for k, v in r["late_samples"].items() if v}
    if late:
        print(f"  samples that arrived after their step was decided: {late}")
    for note in r["notes"]:
        print(f"  note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="20 s main run, 3 sweep rows of 8 s at 160x120")
    parser.add_argument("--seconds", type=float, default=None, help="main run length (default 120, --short 20)")
    parser.add_argument("--sweep-seconds", type=float, default=None, help="each sweep row (default 15, --short 8)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/realtime[_short].json)")
    parser.add_argument("--install", default=None, help="an existing colcon install/ of ros2_ws (default: build one)")
    parser.add_argument("--dds-profile", default="large_frames",
                        help="the nodes' Fast DDS profile, as the launch files' dds_profile: large_frames (the "
                             "package's, default) | none (Fast DDS defaults) | an XML path")
    parser.add_argument("--no-transport-baseline", action="store_true",
                        help="skip the second main run on Fast DDS' default transports (the baseline for the profile)")
    args = parser.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # benchmarks keep DDS on this host
    os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 50))
    seconds = args.seconds or (20.0 if args.short else 120.0)
    sweep_seconds = args.sweep_seconds or (8.0 if args.short else 15.0)
    from process_launch import ColconInstall, colcon_build

    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="bench_realtime_") as tmp:
        work = Path(tmp)
        install = ColconInstall(Path(args.install)) if args.install else colcon_build(work / "colcon")
        main_cams = {"front": {"fps": 29.97, "phase": 0.25, "noise": True}, "wrist": {"fps": 29.97, "phase": 0.7, "noise": True}}
        main_size = (160, 120) if args.short else (640, 480)
        results = {"main": run(install, work, main_cams, seconds, main_size, "front", "main", args.dds_profile)}
        print_main(results["main"])
        if not args.no_transport_baseline and args.dds_profile != "none":
            results["main_fastdds_defaults"] = run(install, work, main_cams, seconds, main_size, "front",
                                                   "main_fastdds_defaults", "none")
            print_main(results["main_fastdds_defaults"])
        rows = [(29.97, 0.0), (30.0, 2000.0), (30.03, 0.0)] if args.short else \
            [(29.97, 0.0), (30.0, 0.0), (30.03, 0.0), (30.0, 2000.0), (30.0, -2000.0)]
        results["sweep"] = []
        for k, (fps, drift) in enumerate(rows):
            cams = {"front": {"fps": fps, "drift_ppm": drift, "phase": rng.random(), "noise": True},
                    "wrist": {"fps": fps, "drift_ppm": -drift, "phase": rng.random(), "noise": True}}
            results["sweep"].append(run(install, work, cams, sweep_seconds, (160, 120), "", f"sweep{k}", args.dds_profile))
    print(f"\ndrift/phase sweep ({sweep_seconds:.0f} s each, 2 cameras 160x120, joints 100 Hz)")
    print(f"{'fps':>7}{'drift ppm':>11}{'phases':>13}{'expected':>10}{'recorded':>10}{'lost':>6}"
          f"{'old rule lost':>15}{'skew p99 ms':>13}")
    for r in results["sweep"]:
        cams = list(r["cameras"].values())
        legacy = r["legacy_40pct"]
        worst = max(r["skew"][f"images/{n}"]["p99_ms"] for n in r["cameras"])
        phases = "/".join(f"{c['phase']:.2f}" for c in cams)
        print(f"{cams[0]['fps']:>7.2f}{cams[0]['drift_ppm']:>+11.0f}{phases:>13}"
              f"{r['expected_steps']:>10}{r['recorded_steps']:>10}{r['lost_steps']:>6}"
              f"{legacy['grid'] - legacy['kept']:>15}{worst:>13.1f}")
    if "main_fastdds_defaults" in results:
        a, b = results["main"], results["main_fastdds_defaults"]
        print(f"\nsteps lost (goal 0): {a['lost_steps']} with DDS profile {a['dds_profile']}, "
              f"{b['lost_steps']} on Fast DDS' defaults (lost in transport: {sum(a['transport_lost'].values())} "
              f"vs {sum(b['transport_lost'].values())} messages)")
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                          "note": "shared 2-core VM with other jobs running: CPU and lag are upper bounds"}
    out = Path(args.out or ROOT / "bench" / "results" / f"realtime{'_short' if args.short else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {out}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
