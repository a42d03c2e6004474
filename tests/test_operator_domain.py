"""Standalone nodes join the operator's ROS domain: a node started with no ROS_DOMAIN_ID is reached
by a `ros2 service call`-equivalent from another plain process that has none set either (domain 0).

Domain 0 may be shared with other jobs on this host, so the node gets a name of its own.
"""

import os
import subprocess
import sys

import pytest
from process_launch import NodeLaunch

pytestmark = pytest.mark.ros

# What `ros2 service call /<arm>/estop std_srvs/srv/Trigger` does, as a plain rclpy program.
SERVICE_CALL = """
import sys, rclpy
from std_srvs.srv import Trigger
rclpy.init()
node = rclpy.create_node("operator_shell")
client = node.create_client(Trigger, sys.argv[1])
if not client.wait_for_service(timeout_sec=60.0):
    print("NO SERVICE", sys.argv[1]); sys.exit(2)
future = client.call_async(Trigger.Request())
rclpy.spin_until_future_complete(node, future, timeout_sec=30.0)
print("ANSWER", future.result().success, future.result().message)
"""


def operator_shell_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE")}
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # still never leaves this host
    return env


@pytest.mark.parametrize("profile", ["fast_dds_defaults", "launch_files_profile"])
def test_a_node_without_ros_domain_id_is_reached_from_an_operator_shell(process_launch, profile):
    """Also with the DDS profile the launch files give their nodes (config/fastdds_large_frames.xml):
    the operator's shell has none, and still reaches them."""
    name = f"arm_operator_{os.getpid()}_{profile}"
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": str(process_launch.install.share / "config" / "fastdds_large_frames.xml")} \
        if profile == "launch_files_profile" else {}
    arm = process_launch.start(NodeLaunch("arm_node", name, parameters=[{"robot": "widowx", "port": "virtual://"}]),
                               env=env, env_remove=("ROS_DOMAIN_ID",))
    call = subprocess.run([sys.executable, "-c", SERVICE_CALL, f"/{name}/estop"], capture_output=True, text=True,
                          timeout=120, env=operator_shell_env())
    process_launch.assert_alive()
    assert "ANSWER True e-stop latched" in call.stdout, call.stdout + call.stderr + arm.log_tail()
    assert "HOLD (estop)" in arm.log_tail()
