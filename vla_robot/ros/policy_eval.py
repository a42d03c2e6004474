"""Closed-loop evaluation through the ROS 2 nodes: twin arm node + twin camera nodes + policy node.

Everything the policy sees and does crosses DDS (loopback): joint states and images in,
joint commands out, start/stop and reset/evaluate as services, the instruction on its
latched topic. The nodes are composed in one process (as ``vla-robot collect`` does),
the arm node owns the twin clock, and ``rate_factor`` runs sim time faster than wall
time on both the arm and the policy node. Per-episode records have the same fields as
the in-process evaluation, so both feed the same report.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from tqdm import tqdm

from vla_robot.policy.config import RuntimeConfig
from vla_robot.policy.evaluation import EvalConfig, Settled, merge_reports
from vla_robot.ros.conversions import image_from_msg
from vla_robot.ros.qos import LATCHED_QOS, SENSOR_QOS


class EvalHarness(Node):
    """The evaluator's side of the wire: service clients, the episode topic, a video subscriber."""

    def __init__(self, arm_name: str, policy_name: str, video_camera: str, context=None) -> None:
        super().__init__("policy_eval", context=context)
        self.reset_cli = self.create_client(Trigger, f"/{arm_name}/reset")
        self.evaluate_cli = self.create_client(Trigger, f"/{arm_name}/evaluate")
        self.start_cli = self.create_client(Trigger, f"/{policy_name}/start")
        self.stop_cli = self.create_client(Trigger, f"/{policy_name}/stop")
        self.estop_cli = self.create_client(Trigger, f"/{policy_name}/estop")
        self.reset_estop_cli = self.create_client(Trigger, f"/{policy_name}/reset_estop")
        self.episode_pub = self.create_publisher(String, "policy/episode", LATCHED_QOS)
        self.recording = False
        self.frames: list[np.ndarray] = []
        self.create_subscription(Image, f"{video_camera}/image_raw", self._on_image, SENSOR_QOS)

    def _on_image(self, msg: Image) -> None:
        if self.recording:
            self.frames.append(image_from_msg(msg))

    def call(self, client, timeout: float = 10.0) -> Trigger.Response:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} is not available")
        done = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout}s")
        return future.result()


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def evaluate_through_ros(policy, cfg: EvalConfig, runtime: RuntimeConfig | None = None, progress: bool = True,
                         rate_factor: float = 3.0) -> tuple[list[dict], dict]:
    from sim import Twin, TwinConfig
    from vla_robot.policy.expert_replay import twin_kwargs
    from vla_robot.ros.policy_stack import SimPolicyStack

    runtime = runtime or RuntimeConfig(asynchronous=True)
    records: list[dict] = []
    reports = []
    bar = tqdm(total=cfg.episodes * len(cfg.splits), desc="eval (through ROS)", disable=not progress)
    for split in cfg.splits:
        twin_cfg = cfg.twin_config(split, policy.camera_names, runtime.control_hz)
        twin = Twin(TwinConfig(**twin_kwargs(twin_cfg)))
        stack = SimPolicyStack(twin, policy, runtime, rate_factor=rate_factor, first_seed=cfg.seed)
        try:
            arm, pol = stack.arm, stack.policy_node
            harness = stack.composition.add(EvalHarness(arm.get_name(), pol.get_name(), cfg.video_camera,
                                                        context=stack.composition.context))
            stack.start()
            _wait_until(lambda: pol.arm.has_state, 20.0, "the first joint state from the arm node")
            for i in range(cfg.episodes):
                rec = _run_episode(harness, pol, twin, twin_cfg, cfg, record_video=i < cfg.videos,
                                   period_wall=runtime.period_s / rate_factor)
                rec.update(split=split, episode=i)
                records.append(rec)
                bar.update(1)
                bar.set_postfix(split=split, success=sum(r["success"] for r in records))
            report = pol.loop.report()
            report["ros"] = {"arm_commands_rejected": arm.rejected, "arm_commands_refused": arm.refused,
                             "policy_rejected_joint_states": pol.arm.rejected,
                             "policy_rejected_images": sum(c.rejected for c in pol.cameras.values())}
            reports.append(report)
        finally:
            stack.shutdown()
    bar.close()
    out = merge_reports(reports)
    out["ros"] = {k: sum(r["ros"][k] for r in reports) for k in reports[-1]["ros"]} if reports else {}
    return records, out


def _run_episode(harness: EvalHarness, pol, twin, twin_cfg: dict, cfg: EvalConfig, record_video: bool,
                 period_wall: float) -> dict:
    reply = json.loads(harness.call(harness.reset_cli).message)
    seed, instruction = int(reply["seed"]), reply["instruction"]
    harness.episode_pub.publish(String(data=json.dumps({"seed": seed, "twin": twin_cfg})))
    _wait_until(lambda: pol.instruction == instruction and (pol.episode or {}).get("seed") == seed, 10.0,
                "the policy node to receive the instruction and episode")
    before = pol.loop.safety.report()
    harness.frames = []
    harness.recording = record_video
    start = harness.call(harness.start_cli)
    if not start.success:
        raise RuntimeError(f"policy node refused to start: {start.message}")
    t0 = time.perf_counter()
    settled = Settled(cfg.settle_steps)
    last_step = -1
    result: dict = {}
    deadline = time.monotonic() + 30.0 + 5 * cfg.max_steps * period_wall
    while twin.steps < cfg.max_steps:
        if time.monotonic() > deadline:
            raise TimeoutError(f"episode seed {seed}: the twin stopped advancing ({twin.steps} steps); "
                               "is the arm node's clock running?")
        time.sleep(period_wall / 2)
        if twin.steps == last_step:
            continue
        last_step = twin.steps
        result = json.loads(harness.call(harness.evaluate_cli).message)
        if settled.update(result):
            break
    harness.call(harness.stop_cli)
    harness.recording = False
    result = json.loads(harness.call(harness.evaluate_cli).message)
    after = pol.loop.safety.report()
    result.update(seed=seed, steps=int(twin.steps), wall_s=time.perf_counter() - t0,
                  safety_events={k: after[k] - before[k] for k in after if after[k] - before[k]})
    if record_video and harness.frames:
        result["_frames"] = list(harness.frames)
    return result
