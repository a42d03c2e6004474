"""Deploy on the real-time twin: control timing and e-stop latency, every node its own process.

    python bench/bench_deploy_realtime.py            # 30 Hz, sync and async, 20 s each + 20 e-stops per mode
    python bench/bench_deploy_realtime.py --short    # 8 s and 6 e-stops per mode (about 2 min)

``deploy.launch.py robot:=sim`` started as ``ros2 launch`` would (tests/process_launch.py: a colcon
build of ros2_ws, one OS process per node): the arm node drives the WidowX 250 driver over the
real-time twin's byte-level servo bus (MuJoCo on the wall clock), a free-running twin camera at
30 fps, and the policy node at 30 Hz with the expert-replay plumbing bundle replaying its contact-free joint sweep, its
inference made to take ``--infer-ms`` (50 ms: longer than a 33 ms control period, as a 3B VLA
on a GPU is).

Measured, per mode:

* tick jitter: |interval - 33.3 ms| between consecutive commands, from the stamps the policy put on
  them (p50 / p99), over the measurement window;
* deadline misses: ticks that started a whole period late (``loop.overruns``) and the ticks lost
  (``loop.missed_ticks``), from the policy's diagnostics;
* stale-action skip rate: actions skipped because they were already in the past when they became
  available (stale chunk heads + the actions of missed ticks) per action the policy produced;
* e-stop latency: from the moment an operator's process (tests/service_call.py, no vla_robot, its
  own environment) sends ``/arm/estop`` to the moment the arm node has written the hold goal to the
  servo bus (the time it reports in its answer), p50 / p99. Goal: p99 <= one control period.
  Also through the policy node (``/policy/estop``, forwarded to the arm node).

Same-run baselines: synchronous inference is the baseline for the timing rows (asynchronous is
the candidate); the e-stop latency with the policy stopped (an idle arm node) is the baseline
for the e-stop rows.

The machine is a shared 2-core VM with other jobs running (load average in the JSON): every
latency here is an upper bound, and the tick timing a worst case. No GPU was lent to this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "62")
os.environ.setdefault("MUJOCO_GL", "egl")

RATE = 30.0
TWIN = {"robot": "widowx250", "task": "grinning_face", "cameras": ["third_person"], "image_size": [64, 64],
        "control_rate_hz": RATE, "split": "train", "n_cards": 4, "max_steps": 2400}
HOLD_AT = re.compile(r"hold written at ([0-9.]+)")


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


class Rig:
    """The deploy nodes as processes, and this script's side of the wire."""

    def __init__(self, install, workdir: Path, bundle: Path, asynchronous: bool, tag: str):
        from process_launch import ProcessLaunch, RosClient
        from service_call import OperatorShell

        self.launcher = ProcessLaunch(install, workdir / f"nodes_{tag}")
        args = {"robot": "sim", "policy": str(bundle), "twin_name": f"bench{tag}{os.getpid()}", "cameras": "third_person",
                "size": "64x64", "control_hz": str(RATE), "asynchronous": str(asynchronous).lower(),
                "max_stall": "2.0"}
        self.launcher.launch("deploy", args)
        self.ros = RosClient(f"bench_{tag}")
        self._subscribe()
        self.ros.wait_for(lambda: self.states, 180, "joint states from the arm node")
        self.operator = OperatorShell("/arm/estop", env_remove=())  # same domain as the nodes here

    def _subscribe(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from vla_robot.ros.qos import COMMAND_QOS, LATCHED_QOS

        self.states = self.ros.subscribe(JointState, "/joint_states", qos_profile_sensor_data, keep=2000)
        self.commands = self.ros.subscribe(JointState, "/joint_command", COMMAND_QOS)
        self.diagnostics = self.ros.subscribe(DiagnosticArray, "/diagnostics", 50, keep=200)
        self.episode_pub = self.ros.publisher(String, "/policy/episode", LATCHED_QOS)

    def call(self, name: str):
        from std_srvs.srv import Trigger

        return self.ros.call(Trigger, name, timeout_s=60)

    def diag(self, node: str, since: float = 0.0) -> dict:
        from vla_robot.ros.diagnostics import status_values

        def newest():
            for t, msg in reversed(list(self.diagnostics)):
                if t > since and msg.status[0].name == f"{node}: {node}":
                    return status_values(msg)
            return None

        return self.ros.wait_for(newest, 30, f"{node} diagnostics")

    def start_policy(self, infer_s: float) -> None:
        from std_msgs.msg import String

        reply = json.loads(self.call("/arm/reset").message)
        self.episode_pub.publish(String(data=json.dumps({"seed": reply["seed"], "twin": TWIN, "infer_delay_s": infer_s,
                                                         "plan": "sweep"})))

        def running() -> bool:
            if not self.call("/policy/start").success:
                return False
            for _ in range(10):
                if self.diag("policy", time.monotonic()).get("running") == "True":
                    return True
            return False

        self.ros.wait_for(running, 120, "the policy to run")

    def window(self, seconds: float) -> dict:
        """Measure the running policy for ``seconds``: tick intervals and counter differences."""
        before = self.diag("policy", time.monotonic())
        t0 = time.time()
        time.sleep(seconds)
        after = self.diag("policy", time.monotonic())
        t1 = time.time()
        stamps = np.array(sorted(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in list(self.commands)))
        stamps = stamps[(stamps >= t0) & (stamps <= t1)]
        jitter = np.abs(np.diff(stamps) - 1.0 / RATE) * 1e3

        def delta(key: str) -> int:
            return int(after.get(key, 0)) - int(before.get(key, 0))

        chunks, stale, late = delta("scheduler.chunks_received"), delta("scheduler.stale_actions_skipped"), \
            delta("loop.actions_skipped_late")
        horizon = 10
        return {"seconds": t1 - t0, "commands": int(len(stamps)), "expected_ticks": int(round((t1 - t0) * RATE)),
                "jitter_p50_ms": pct(jitter, 50), "jitter_p99_ms": pct(jitter, 99),
                "interval_p50_ms": pct(np.diff(stamps) * 1e3, 50), "interval_p99_ms": pct(np.diff(stamps) * 1e3, 99),
                "deadline_misses": delta("loop.overruns"), "missed_ticks": delta("loop.missed_ticks"),
                "ticks": delta("loop.ticks"), "chunks": chunks, "stale_skipped": stale, "skipped_late": late,
                "stale_skip_rate": (stale + late) / max(1, chunks * horizon),
                "safety_holds": delta("safety.hold"),
                "inference_total_p50_ms": float(after.get("latency.total.p50_ms", "nan"))}

    def estops(self, n: int, via: str) -> list[float]:
        """``n`` e-stops from the operator's process; seconds from request to the hold on the bus."""
        out = []
        for _ in range(n):
            time.sleep(0.3 + 0.3 * np.random.rand())  # at a random phase of the control period
            if via == "arm":
                reply = self.operator.call("/arm/estop")
                written = float(HOLD_AT.search(reply["message"]).group(1))
            else:  # through the policy node, which forwards to the arm node
                reply = self.operator.call("/policy/estop")
                t = time.monotonic()
                written = float(self.ros.wait_for(
                    lambda: (lambda d: float(d["hold_written_at"]) if float(d["hold_written_at"]) > reply["sent"] else 0)(
                        self.diag("arm", t)), 30, "the forwarded hold"))
            out.append(written - reply["sent"])
            self.operator.call("/policy/reset_estop" if via == "policy" else "/arm/release_estop")
            self.operator.call("/arm/start")
            if via == "policy":
                self.ros.wait_for(lambda: self.call("/policy/start").success, 60, "the policy to restart")
        return out

    def close(self) -> None:
        self.operator.close()
        self.ros.close()
        self.launcher.shutdown()


def latency_row(values_s: list[float]) -> dict:
    ms = np.asarray(values_s) * 1e3
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": float(ms.max()) if len(ms) else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per mode")
    parser.add_argument("--estops", type=int, default=20, help="e-stops per mode (arm node); half as many via the policy")
    parser.add_argument("--infer-ms", type=float, default=50.0, help="inference time of the plumbing policy")
    parser.add_argument("--short", action="store_true", help="8 s windows and 6 e-stops")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "deploy_realtime.json"))
    args = parser.parse_args()
    if args.short:
        args.seconds, args.estops = 8.0, 6

    from process_launch import colcon_build

    from vla_robot.policy.expert_replay import write_expert_replay_bundle

    results: dict = {"rate_hz": RATE, "infer_ms": args.infer_ms, "machine": {
        "platform": platform.platform(), "cpus": os.cpu_count(), "load_average_start": os.getloadavg(),
        "gpu": "none lent to this run"}, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as tmp:
        work = Path(tmp)
        print("building ros2_ws with colcon ...", flush=True)
        install = colcon_build(work / "colcon")
        bundle = write_expert_replay_bundle(work / "bundle", chunk_size=10)
        for mode, asynchronous in (("sync", False), ("async", True)):
            print(f"[{mode}] starting the deploy processes ...", flush=True)
            rig = Rig(install, work, bundle, asynchronous, mode)
            try:
                idle = rig.estops(max(3, args.estops // 2), "arm") if mode == "sync" else None
                rig.start_policy(args.infer_ms / 1e3)
                time.sleep(2.0)
                timing = rig.window(args.seconds)
                arm = rig.estops(args.estops, "arm")
                forwarded = rig.estops(max(3, args.estops // 2), "policy")
            finally:
                rig.close()
            results["modes"][mode] = {"timing": timing, "estop_arm": latency_row(arm),
                                      "estop_via_policy": latency_row(forwarded)}
            if idle is not None:
                results["estop_idle_baseline"] = latency_row(idle)
            print(json.dumps(results["modes"][mode], indent=1), flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    period_ms = 1e3 / RATE
    s, a = results["modes"]["sync"], results["modes"]["async"]
    results["goal_estop_p99_le_period"] = {m: results["modes"][m]["estop_arm"]["p99_ms"] <= period_ms for m in ("sync", "async")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nDeploy on the real-time twin, {RATE:.0f} Hz control, inference {args.infer_ms:.0f} ms, "
          f"load average {results['machine']['load_average_start'][0]:.1f} -> {results['machine']['load_average_end'][0]:.1f}")
    print("| mode | tick jitter p50 / p99 ms | deadline misses (ticks lost) / s | stale-action skip rate | "
          "e-stop -> hold on bus p50 / p99 ms (arm) | via policy p50 / p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = results["estop_idle_baseline"]
    print(f"| baseline: policy stopped | - | - | - | {base['p50_ms']:.1f} / {base['p99_ms']:.1f} | - |")
    for name, row in (("sync (baseline)", s), ("async", a)):
        t = row["timing"]
        print(f"| {name} | {t['jitter_p50_ms']:.1f} / {t['jitter_p99_ms']:.1f} | "
              f"{t['deadline_misses'] / t['seconds']:.2f} ({t['missed_ticks'] / t['seconds']:.2f}) | "
              f"{t['stale_skip_rate']:.2f} | {row['estop_arm']['p50_ms']:.1f} / {row['estop_arm']['p99_ms']:.1f} | "
              f"{row['estop_via_policy']['p50_ms']:.1f} / {row['estop_via_policy']['p99_ms']:.1f} |")
    print(f"e-stop p99 <= one control period ({period_ms:.1f} ms): {results['goal_estop_p99_le_period']}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
