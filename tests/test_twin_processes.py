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
