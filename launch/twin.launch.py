"""The MuJoCo twin as a ROS 2 robot: arm (twin clock) + rendered cameras in one process.

    ros2 launch vla_robot_bringup twin.launch.py
    ros2 launch vla_robot_bringup twin.launch.py robot:=so100 cameras:=third_person size:=640x480 scripted:=true

Topics: joint_states, joint_trajectory / joint_command (targets in), <camera>/image_raw,
<camera>/camera_info, instruction. Services: /arm/reset, /arm/evaluate, /arm/estop.
The twin and its cameras share one process because they share one physics state.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "vla_robot_bringup"
ARGUMENTS = {
    "robot": ("widowx250", "twin arm model: widowx250 | so100"),
    "task": ("grinning_face", "grinning_face | reach | push"),
    "cameras": ("third_person,wrist", "comma-separated twin cameras"),
    "size": ("128x128", "image WIDTHxHEIGHT"),
    "control_rate_hz": ("10.0", "control periods per second"),
    "rate_factor": ("1.0", "sim seconds per wall second"),
    "seed": ("0", "first episode seed"),
    "scripted": ("false", "drive the arm with the scripted expert at once"),
}


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    width, height = (int(v) for v in arg["size"].lower().split("x"))
    config = os.path.join(get_package_share_directory(PACKAGE), "config", "twin.yaml")
    params = {
        "robot": arg["robot"],
        "task": arg["task"],
        "cameras": arg["cameras"],
        "width": width,
        "height": height,
        "control_rate_hz": float(arg["control_rate_hz"]),
        "rate_factor": float(arg["rate_factor"]),
        "seed": int(arg["seed"]),
        "scripted": arg["scripted"].lower() == "true",
    }
    return [Node(package=PACKAGE, executable="twin_node", name="twin", parameters=[config, params], output="screen")]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
