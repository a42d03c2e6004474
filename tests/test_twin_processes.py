"""The real-time twin as ros2 launch runs it: each node its own OS process (tests/process_launch.py).

Every twin here gets a name of its own (``twin://...?name=<test><pid>``), so tests running at
once, here or in another checkout, never share a twin.
"""

import json
import os

import numpy as np
import pytest
from process_launch import RosClient

pytestmark = pytest.mark.ros


def unique(tag: str) -> str:
    return f"{tag}{os.getpid()}"


def statuses(messages) -> list[dict]:
    return [json.loads(m.data) for _, m in messages]


def test_twin_launch_scripted_expert_succeeds_in_separate_processes(process_launch):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from vla_robot.ros.qos import LATCHED_QOS

    nodes = process_launch.launch("twin", {"name": unique("tl"), "scripted": "true", "size": "64x64",
                                           "cameras": "third_person"})
    assert [n.node.executable for n in nodes] == ["arm_node", "camera_node", "teleop_node"]
    with RosClient() as ros:
        phase = ros.subscribe(String, "/teleop/phase", LATCHED_QOS)
        images = ros.subscribe(Image, "/third_person/image_raw", qos_profile_sensor_data)
        ros.wait_for(lambda: any(p["done"] for p in statuses(phase)), timeout_s=120, what="the expert's plan done")
        process_launch.assert_alive()
        verdict = ros.call(Trigger, "/arm/evaluate")
        result = json.loads(verdict.message)
        assert verdict.success, result
        assert result["card"] == result["target"] or result["success"]
        assert len(images) > 30 and images[-1][1].width == 64


def positions(msg) -> np.ndarray:
    return np.array(msg.position, dtype=float)


@pytest.mark.parametrize("kind", ["widowx", "so100"])
def test_arm_node_on_the_twin_follows_sags_holds_and_overloads(process_launch, kind):
    """arm_node port:=twin as its own process: the driver path of a real arm, the twin's ground truth
    (~/twin_status) to check it against, faults injected through the twin_fault parameter."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from process_launch import NodeLaunch
    from vla_robot.ros.qos import COMMAND_QOS, LATCHED_QOS

    arm = "widowx250" if kind == "widowx" else "so100"
    address = f"twin://{arm}?name={unique(kind)}"
    process_launch.start(NodeLaunch("arm_node", "arm", parameters=[{"robot": kind, "port": address}]))
    with RosClient() as ros:
        states = ros.subscribe(JointState, "/joint_states", qos_profile_sensor_data)
        status = ros.subscribe(String, "/arm/twin_status", LATCHED_QOS)
        command = ros.publisher(JointState, "/joint_command", COMMAND_QOS)
        ros.wait_for(lambda: len(states) > 5 and status and command.get_subscription_count(), timeout_s=60,
                     what="joint states, twin status and the command subscriber")
        names = list(states[-1][1].name)
        home = positions(states[-1][1])
        target = home.copy()
        target[0] += 0.4  # waist / shoulder pan
        target[2] += 0.2  # elbow

        def follow(goal, timeout_s=20.0):
            def reached():
                command.publish(JointState(name=names, position=list(goal)))
                return np.abs(positions(states[-1][1]) - goal).max() < 0.01

            ros.wait_for(reached, timeout_s=timeout_s, what=f"the arm at {np.round(goal, 3)}", poll_s=0.05)

        follow(target)  # positions follow goals, through the driver's clamp and the servo bus

        def tcp():
            return np.array(statuses(status)[-1]["tcp"])

        def hold_drift(seconds=3.0):
            start = len(status)
            ros.wait_for(lambda: len(status) >= start + 2, timeout_s=30, what="twin status")
            first = tcp()
            n = len(status)
            ros.wait_for(lambda: len(status) >= n + int(seconds / 0.5), timeout_s=60, what=f"{seconds}s of status")
            return np.linalg.norm(tcp() - first)

        assert hold_drift() <= 0.002  # torque on: no sag
        # torque off goes to the sleep pose first (the arm node's guard), then the servos go limp
        assert ros.call(SetBool, "/arm/torque", data=False).success
        ros.wait_for(lambda: not any(s["torque"] for s in statuses(status)[-1]["servos"].values()), timeout_s=60,
                     what="torque off at the sleep pose")
        high = tcp()
        ros.wait_for(lambda: np.linalg.norm(high - tcp()) > 0.003, timeout_s=30,
                     what="the limp arm falling from its sleep pose (the twin has no cradle)")
        assert ros.call(SetBool, "/arm/torque", data=True).success
        assert hold_drift() <= 0.002  # torque on again: it holds where it fell
        assert ros.call(Trigger, "/arm/start").success  # the torque-off request latched a stop: start resumes

        joint = names[2]
        ok, reason = ros.set_parameter("/arm", "twin_fault", json.dumps({"kind": "block_joint", "joint": joint}))
        assert ok, reason
        pushed = positions(states[-1][1])
        pushed[2] -= 0.5
        ros.wait_for(lambda: command.publish(JointState(name=names, position=list(pushed)))
                     or statuses(status)[-1]["servos"][joint]["hw_error"] & 0x20,
                     timeout_s=30, what=f"an overload on the blocked {joint}", poll_s=0.05)
        servo = statuses(status)[-1]["servos"][joint]
        assert servo["torque"] is (kind == "so100")  # Dynamixel: Shutdown cuts the torque; STS: protective torque
        bad, reason = ros.set_parameter("/arm", "twin_fault", '{"kind": "melt"}')
        assert not bad and "unknown twin fault kind 'melt'" in reason
        process_launch.assert_alive()


def test_collect_launch_sim_records_a_successful_episode_in_separate_processes(process_launch, tmp_path):
    """collect.launch.py robot:=sim as ros2 launch starts it: arm (port:=twin), two free-running twin
    cameras, the scripted expert and the recorder, five processes. The test is the operator."""
    import time

    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from vla_robot.data import EpisodeStore
    from vla_robot.ros.qos import LATCHED_QOS

    store = tmp_path / "demos.zarr"
    nodes = process_launch.launch("collect", {"robot": "sim", "store": str(store), "twin_name": unique("col"),
                                              "size": "64x64", "console": "false"})  # its own test: test_console_launch
    assert [n.node.executable for n in nodes] == ["arm_node", "camera_node", "camera_node", "teleop_node",
                                                  "recorder_node"]
    with RosClient() as ros:
        phase = ros.subscribe(String, "/teleop/phase", LATCHED_QOS)
        instruction = ros.subscribe(String, "/instruction", LATCHED_QOS)
        for service, kind in (("/recorder/start", Trigger), ("/teleop/enable", SetBool), ("/arm/evaluate", Trigger)):
            ros.wait_for_service(service, kind, timeout_s=90)
        ros.wait_for(lambda: instruction, timeout_s=30, what="the episode's instruction")
        asked = instruction[-1][1].data
        time.sleep(2.0)  # the recorder's own subscriptions match too, and the cameras stream
        started = ros.call(Trigger, "/recorder/start")
        assert started.success, started.message
        assert ros.call(SetBool, "/teleop/enable", data=True).success
        ros.wait_for(lambda: any(p["done"] and p["episode"] == 0 for p in statuses(phase)), timeout_s=120,
                     what="the expert's plan done")
        time.sleep(1.0)  # the last commands land and are recorded
        assert ros.call(SetBool, "/teleop/enable", data=False).success
        verdict = json.loads(ros.call(Trigger, "/arm/evaluate").message)
        assert verdict["success"], verdict
        saved = ros.call(SetBool, "/recorder/save", data=True)
        assert saved.success, saved.message
        ros.wait_for(lambda: len(instruction) > 1, timeout_s=30, what="the recorder's auto-reset: a new episode")
        process_launch.assert_alive()
    codes = process_launch.shutdown()
    assert all(code == 0 for code in codes.values()), codes
    episodes = EpisodeStore.open(str(store))
    assert episodes.num_episodes == 1
    meta = episodes.episode_meta(0)
    assert meta["success"] and meta["instruction"] == asked
    episode = episodes.read_episode(0)
    assert len(episode["action"]) >= 30  # ~5 s of the expert at 10 Hz
    assert episode["images/third_person"].shape[1:] == (64, 64, 3)
    moved = np.abs(episode["state"] - episode["state"][0]).max()
    assert moved > 0.3  # the arm travelled while recording (where it ends depends on the card it placed on)
