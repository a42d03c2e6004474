"""Teleoperation for a real arm (or the twin).

    ros2 launch vla_robot_bringup teleop.launch.py mode:=joy robot:=widowx250      # gamepad: needs joy_node
    ros2 launch vla_robot_bringup teleop.launch.py mode:=twist robot:=widowx250    # spacemouse -> cmd_twist
    ros2 launch vla_robot_bringup teleop.launch.py mode:=leader robot:=so100 leader_port:=/dev/ttyACM1 \
        leader_calibration:=~/.config/vla_robot/so100_leader.json
    ros2 run vla_robot_bringup teleop_node --ros-args -p mode:=keyboard           # keys need a terminal

``leader`` starts a second arm node (torque off) whose joint states drive the follower.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "vla_robot_bringup"
ARGUMENTS = {
    "mode": ("joy", "joy | twist | leader | keyboard"),
    "robot": ("widowx250", "arm model for joint names and IK: widowx250 | so100"),
    "leader_port": ("/dev/ttyACM1", "leader arm serial port (mode:=leader)"),
    "leader_calibration": ("", "leader arm calibration JSON (mode:=leader)"),
}


def teleop_nodes(arg: dict) -> list:
    """Shared with collect.launch.py so both start teleop the same way."""
    config = os.path.join(get_package_share_directory(PACKAGE), "config", "teleop.yaml")
    nodes = [Node(package=PACKAGE, executable="teleop_node", name="teleop", output="screen", emulate_tty=True,
                  parameters=[config, {"mode": arg["mode"], "robot": arg["robot"]}])]
    if arg["mode"] == "leader":
        leader = {"robot": "so100", "port": arg["leader_port"], "torque_on_start": False}
        if arg["leader_calibration"]:
            leader["calibration_path"] = os.path.expanduser(arg["leader_calibration"])
        nodes.append(Node(package=PACKAGE, executable="arm_node", name="leader", output="screen", parameters=[leader],
                          remappings=[("joint_states", "leader/joint_states"),
                                      ("joint_trajectory", "leader/joint_trajectory"),
                                      ("joint_command", "leader/joint_command")]))
    return nodes


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if arg["mode"] not in ("joy", "twist", "leader", "keyboard"):
        raise RuntimeError(f"teleop.launch.py: mode:={arg['mode']} unknown; choose joy, twist, leader or keyboard")
    return teleop_nodes(arg)


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
