"""The policy runtime through real ROS 2 nodes over DDS (loopback): plumbing proven end to end."""

import json
import time

import numpy as np
import pytest
from std_msgs.msg import String

pytestmark = pytest.mark.ros

from vla_robot.policy.config import RuntimeConfig  # noqa: E402
from vla_robot.policy.evaluation import EvalConfig  # noqa: E402
from vla_robot.policy.expert_replay import ExpertReplayPolicy, twin_kwargs  # noqa: E402

SEED = 100_000


def record_inference_threads(policy) -> set:
    """Wrap ``policy.infer`` to collect the names of the threads it runs on (warm-up included)."""
    import threading

    names: set = set()
    infer = policy.infer

    def recorded(obs):
        names.add(threading.current_thread().name)
        return infer(obs)

    policy.infer = recorded
    return names


def expert_success(cfg: EvalConfig, split: str) -> list[bool]:
    """The scripted expert itself, driving the twin directly (no runtime, no ROS)."""
    from sim import ScriptedExpert, Twin, TwinConfig, TwinRobot

    twin = Twin(TwinConfig(**twin_kwargs(cfg.twin_config(split, ("third_person",), 10.0))))
    robot = TwinRobot(twin)
    robot.connect()
    expert = ScriptedExpert(twin)
    out = []
    for i in range(cfg.episodes):
        twin.reset(cfg.seed + i)
        expert.reset()
        for _ in range(cfg.max_steps):
            robot.send_joint_targets(expert.act())
        out.append(twin.evaluate()["success"])
    twin.close()
    return out


def test_expert_replay_through_ros_reaches_the_expert_success_rate(tmp_path):
    from vla_robot.policy.evaluation import evaluate_in_process
    from vla_robot.policy.report import build_report, write_outputs
    from vla_robot.ros.policy_eval import evaluate_through_ros

    cfg = EvalConfig(episodes=3, split="train", seed=SEED, image_size=(64, 64), videos=1)
    expert = expert_success(cfg, "train")
    assert sum(expert) >= 2  # the bar must be meaningful

    policy = ExpertReplayPolicy("widowx250", chunk_size=10)
    records, runtime_report = evaluate_through_ros(policy, cfg, RuntimeConfig(asynchronous=True), progress=False)
    ros_success = [r["success"] for r in records]
    # The expert replay is open loop: it succeeds exactly when every command lands on its step.
    # Through ROS the twin and the policy run on two wall-clock timers, and on a starved CPU the
    # watchdog may hold the arm for a stale observation or a stalled inference, which shifts the
    # replay and can lose the episode. That is the safety layer working, so a lost success must
    # come with such a watchdog alert on record. Plain holds do not count: every episode has them
    # (no action yet while the first chunk is computed), so "any hold" could never fail. A lost
    # success without an alert is a plumbing bug (a dropped, reordered or mis-stepped command).
    from vla_robot.policy.safety import ALERT_EVENTS

    assert sum(ros_success) >= 1, records
    for ros, exp, rec in zip(ros_success, expert, records):
        assert rec["safety_events"].get("no_action", 0) >= 1  # why "any hold" was no evidence
        if exp and not ros:
            alerts = {k: v for k, v in rec["safety_events"].items() if k in ALERT_EVENTS}
            assert alerts, (ros_success, expert, rec["safety_events"])
    assert [r["seed"] for r in records] == [SEED, SEED + 1, SEED + 2]
    assert runtime_report["ros"] == {"arm_commands_rejected": 0, "arm_commands_refused": 0,
                                     "policy_rejected_joint_states": 0, "policy_rejected_images": 0}
    assert runtime_report["scheduler"]["chunks_received"] >= 3 * 4
    assert policy.frames_seen >= runtime_report["scheduler"]["chunks_received"]  # images crossed DDS for every request
    assert records[0]["_frames"] and records[0]["_frames"][0].shape == (64, 64, 3)

    in_process, _ = evaluate_in_process(policy, cfg, RuntimeConfig(asynchronous=False), progress=False)
    assert [r["success"] for r in in_process] == expert  # the in-process path is exact

    report = build_report(records, runtime_report, {"mode": "through_ros", "policy": policy.describe()})
    paths = write_outputs(report, records, tmp_path)
    saved = json.loads(paths["report"].read_text())
    assert saved["metrics"]["train"]["sr"] == pytest.approx(sum(ros_success) / 3)
    assert (tmp_path / "videos").glob("*.mp4") and paths["summary"].stat().st_size > 10_000


def test_policy_node_estop_diagnostics_and_bad_input():
    """e-stop through the service holds the arm; diagnostics carry latency and safety counts;
    malformed joint states and images are rejected and counted, and the node keeps running."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, JointState
    from sim import Twin, TwinConfig
    from vla_robot.ros.diagnostics import status_values
    from vla_robot.ros.policy_eval import EvalHarness, _wait_until  # each wait its own deadline, failing by name
    from vla_robot.ros.policy_stack import SimPolicyStack

    cfg = EvalConfig(episodes=1, seed=SEED, image_size=(64, 64))
    twin_cfg = cfg.twin_config("train", ("third_person",), 10.0)
    twin = Twin(TwinConfig(**twin_kwargs(twin_cfg)))
    policy = ExpertReplayPolicy("widowx250", chunk_size=10)
    threads = record_inference_threads(policy)
    import os

    cpus = os.sched_getaffinity(0)
    stack = SimPolicyStack(twin, policy, RuntimeConfig(asynchronous=True), rate_factor=3.0, first_seed=SEED)
    assert len(os.sched_getaffinity(0)) == (1 if len(cpus) > 1 else len(cpus))  # the stack runs on one core
    harness = stack.composition.add(EvalHarness(stack.arm.get_name(), stack.policy_node.get_name(), "third_person",
                                                context=stack.composition.context))
    diag = []
    harness.create_subscription(DiagnosticArray, "/diagnostics",
                                lambda m: diag.append(m) if m.status[0].name.endswith("policy") else None, 10)
    bad_state = harness.create_publisher(JointState, "joint_states", 10)
    bad_image = harness.create_publisher(Image, "third_person/image_raw", 10)
    try:
        stack.start()
        node = stack.policy_node
        _wait_until(lambda: node.arm.has_state, 20.0, "the first joint state")
        reply = json.loads(harness.call(harness.reset_cli).message)
        harness.episode_pub.publish(String(data=json.dumps({"seed": reply["seed"], "twin": twin_cfg})))
        _wait_until(lambda: (node.episode or {}).get("seed") == reply["seed"], 20.0, "the episode context")
        assert harness.call(harness.start_cli).success
        _wait_until(lambda: twin.steps >= 25, 20.0, "25 twin steps")
        moving = twin.joint_positions()
        assert np.abs(moving[:6] - np.asarray(twin.spec.home)[:6]).max() > 0.02  # the policy is driving the arm

        msg = JointState(name=list(twin.spec.joint_names), position=[float("nan")] * twin.spec.dof)
        bad_state.publish(msg)
        img = Image(height=4, width=4, encoding="mono16", step=8, data=bytes(32))
        bad_image.publish(img)

        last_before = stack.arm.guard.last_sent.copy()
        reply = harness.call(harness.estop_cli)
        assert reply.success and "forwarded to the arm node" in reply.message
        _wait_until(lambda: stack.arm.guard.estopped, 10.0, "the arm node to latch the forwarded e-stop")
        ticks = node.ticks_while_running
        n_before = len(stack.arm.command_log)
        _wait_until(lambda: len(stack.arm.command_log) >= n_before + 8, 20.0, "8 twin steps under e-stop")
        assert node.ticks_while_running <= ticks + 1 and not node.running  # the policy stopped ticking
        # Under e-stop the arm is held at one fixed target, the last commanded pose: no jump back to
        # where the (lagging) arm was measured, and the twin settles onto it.
        held = [c[2] for c in list(stack.arm.command_log)[n_before:]]
        for target in held:
            np.testing.assert_allclose(target, held[0], atol=1e-9)
        np.testing.assert_allclose(held[0], last_before, atol=0.35)  # within one step of the last command
        assert np.abs(twin.joint_positions() - held[0]).max() < 0.03
        assert harness.call(harness.start_cli).success is False  # start is refused while latched

        def rejected_after_republish() -> bool:
            bad_image.publish(img)  # best-effort image QoS: a single sample may be lost
            return sum(c.rejected for c in node.cameras.values()) >= 1

        _wait_until(rejected_after_republish, 20.0, "a rejected image")
        time.sleep(1.2)  # one diagnostics period
        values = status_values(diag[-1])
        assert values["estopped"] == "True" and int(values["safety.estop"]) == 1
        assert float(values["latency.total.p99_ms"]) >= float(values["latency.total.p50_ms"]) > 0
        assert "queue_depth" in values
        assert node.arm.rejected >= 1 and int(values["rejected_images"]) >= 1
        assert harness.call(harness.reset_estop_cli).success
        assert not node.loop.safety.estopped
        _wait_until(lambda: not stack.arm.guard.estopped, 10.0, "the arm node to release (forwarded)")
        n = len(stack.arm.command_log)
        _wait_until(lambda: len(stack.arm.command_log) >= n + 5, 20.0, "5 twin steps after the release")
        assert not node.running and stack.arm.guard.hold is not None  # release alone moves nothing
        for c in list(stack.arm.command_log)[n:]:
            np.testing.assert_allclose(c[2], held[0], atol=1e-9)
        assert harness.call(harness.start_cli).success  # start does: the arm node first, then the policy
        _wait_until(lambda: node.running and stack.arm.guard.hold is None, 20.0, "the policy and arm to run again")
        assert threads == {"policy-inference"}  # never on an executor thread that serves state and e-stop
    finally:
        stack.shutdown()
    assert os.sched_getaffinity(0) == cpus  # and gives the caller its CPUs back


def test_stop_with_autostart_stays_stopped():
    """Autostart starts once. After ~/stop (or an e-stop and its release) the autostart timer keeps
    firing and nothing restarts: only ~/start does."""
    from sim import Twin, TwinConfig
    from vla_robot.ros.policy_eval import EvalHarness, _wait_until
    from vla_robot.ros.policy_stack import SimPolicyStack

    cfg = EvalConfig(episodes=1, seed=SEED, image_size=(32, 32))
    twin_cfg = cfg.twin_config("train", ("third_person",), 10.0)
    twin = Twin(TwinConfig(**twin_kwargs(twin_cfg)))
    policy = ExpertReplayPolicy("widowx250", chunk_size=10)
    threads = record_inference_threads(policy)
    stack = SimPolicyStack(twin, policy, RuntimeConfig(asynchronous=False), rate_factor=3.0, first_seed=SEED,
                           autostart=True)
    harness = stack.composition.add(EvalHarness(stack.arm.get_name(), stack.policy_node.get_name(), "third_person",
                                                context=stack.composition.context))
    try:
        stack.start()
        node = stack.policy_node
        reply = json.loads(harness.call(harness.reset_cli).message)
        harness.episode_pub.publish(String(data=json.dumps({"seed": reply["seed"], "twin": twin_cfg})))
        _wait_until(lambda: node.running, 30.0, "autostart")
        assert harness.call(harness.stop_cli).success
        ticks = node.ticks_while_running
        time.sleep(1.6)  # three autostart timer periods
        assert not node.running and node.ticks_while_running <= ticks + 1
        assert harness.call(harness.estop_cli).success and harness.call(harness.reset_estop_cli).success
        time.sleep(1.1)
        assert not node.running  # neither an e-stop release nor the timer restarts it
        assert harness.call(harness.start_cli).success
        _wait_until(lambda: node.running, 20.0, "the explicit start")
        assert threads == {"policy-control"}  # synchronous: the control thread, never the executor
    finally:
        stack.shutdown()


def test_policy_node_takes_the_bundle_rate_and_refuses_a_mismatch(composed):
    from vla_robot.ros.policy_node import PolicyNode

    policy = ExpertReplayPolicy("widowx250", chunk_size=10)
    policy.control_hz = 30.0  # as a bundle trained at 30 Hz records it
    node = composed.add(PolicyNode({}, policy=policy, name="policy_rate", context=composed.context))
    assert node.runtime.control_hz == 30.0 and node.loop.wall_period == pytest.approx(1 / 30)
    with pytest.raises(ValueError, match="trained at 30 Hz"):
        PolicyNode({"control_hz": 10.0}, policy=policy, name="policy_rate2", context=composed.context)
    forced = composed.add(PolicyNode({"control_hz": 10.0, "control_hz_override": True}, policy=policy,
                                     name="policy_rate3", context=composed.context))
    assert forced.runtime.control_hz == 10.0
