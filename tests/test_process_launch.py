"""The process-launch harness (tests/process_launch.py): launch files' nodes as separate OS
processes from a colcon install, with their parameters passed the way launch_ros passes them."""

import numpy as np
import pytest
import yaml
from process_launch import NodeLaunch, RosClient

pytestmark = pytest.mark.ros


def test_parameters_are_passed_as_launch_ros_does(tmp_path, colcon_install):
    config = tmp_path / "arm.yaml"
    config.write_text("arm:\n  ros__parameters:\n    publish_rate_hz: 100.0\n")
    node = NodeLaunch("arm_node", "arm", parameters=[str(config), {"robot": "widowx", "port": "virtual://"},
                                                     {"publish_rate_hz": 20.0}],
                      remappings=[("joint_states", "follower/joint_states")])
    command = node.command(colcon_install, tmp_path)
    assert command[0] == str(colcon_install.executable("arm_node"))
    assert command[1:4] == ["--ros-args", "-r", "__node:=arm"]
    files = [command[i + 1] for i, arg in enumerate(command) if arg == "--params-file"]
    assert files[0] == str(config)  # YAML files as they are, in order, then each dict as its own file
    assert [yaml.safe_load(open(f)) for f in files[1:]] == [
        {"/**": {"ros__parameters": {"robot": "widowx", "port": "virtual://"}}},
        {"/**": {"ros__parameters": {"publish_rate_hz": 20.0}}}]
    assert command[-2:] == ["-r", "joint_states:=follower/joint_states"]


def test_later_parameter_files_override_earlier_ones_in_the_running_node(tmp_path, process_launch):
    """YAML says 100 Hz, the launch dict says 20 Hz: the node publishes stamps 50 ms apart (rcl's order)."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    config = tmp_path / "arm.yaml"
    config.write_text("arm_plt:\n  ros__parameters:\n    publish_rate_hz: 100.0\n    robot: so100\n")
    process_launch.start(NodeLaunch("arm_node", "arm_plt", parameters=[
        str(config), {"robot": "widowx", "port": "virtual://"}, {"publish_rate_hz": 20.0}]))
    with RosClient() as ros:
        states = ros.subscribe(JointState, "joint_states", qos_profile_sensor_data)
        ros.wait_for(lambda: len(states) >= 12, timeout_s=60, what="12 joint states from the arm process")
        process_launch.assert_alive()
        names = list(states[-1][1].name)
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in states])
    assert names[0] == "waist"  # robot:=widowx from the dict replaced the YAML's so100
    assert np.median(np.diff(stamps)) == pytest.approx(0.05, rel=0.2)  # the timer period, not 10 ms


def test_launch_file_nodes_start_and_stop_like_ros2_launch(process_launch):
    from std_srvs.srv import Trigger

    nodes = process_launch.nodes("teleop", {"mode": "twist"})
    assert [(n.executable, n.name) for n in nodes] == [("teleop_node", "teleop")]
    assert str(nodes[0].parameters[0]).endswith("share/vla_robot_bringup/config/teleop.yaml")
    process_launch.launch("teleop", {"mode": "twist"})
    arm = process_launch.start(NodeLaunch("arm_node", "arm", parameters=[{"robot": "widowx", "port": "virtual://"}]))
    with RosClient() as ros:
        answer = ros.call(Trigger, "/arm/estop", timeout_s=60)
        assert answer.success and "e-stop" in answer.message
    process_launch.assert_alive()
    codes = process_launch.shutdown()
    assert codes == {"arm": 0, "teleop": 0}, process_launch.logs()  # SIGINT ends each node cleanly
    assert "HOLD (estop)" in arm.log_tail()


SHUTDOWN_RACE = """
import sys
import rclpy
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from vla_robot.ros.executor import spin_single

class Probe(Node):
    def __init__(self):
        super().__init__("shutdown_race_probe")
    def close(self):
        print("CLOSED", flush=True)

def spin(node, executor=None):  # what rcl does when SIGINT's shutdown lands before the next wait set
    if sys.argv[1] == "shut_down":
        rclpy.shutdown()
    raise rclpy_implementation.RCLError("failed to initialize wait set: the given context is not valid")

rclpy.spin = spin
spin_single(Probe)
print("EXITED", flush=True)
"""


@pytest.mark.parametrize("context", ["shut_down", "alive"])
def test_a_wait_set_refused_during_shutdown_is_a_clean_exit_and_on_a_live_context_an_error(context):
    """CI (stop 20) saw the recorder exit 1 on a normal SIGINT stop: rcl refused the executor's wait
    set because the signal had already shut the context down. That is a clean exit; the same
    error while the context is alive is not, and propagates. close() runs either way."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", SHUTDOWN_RACE, context], capture_output=True, text=True, timeout=60)
    assert "CLOSED" in run.stdout, run.stdout + run.stderr
    if context == "shut_down":
        assert run.returncode == 0 and "EXITED" in run.stdout, run.stdout + run.stderr
    else:
        assert run.returncode != 0 and "context is not valid" in run.stderr and "EXITED" not in run.stdout
