"""The real-time MuJoCo twin as a ROS 2 robot: each node its own process, as on a robot PC.

    ros2 launch vla_robot_bringup twin.launch.py
    ros2 launch vla_robot_bringup twin.launch.py robot:=so100 name:=lab2 cameras:=third_person size:=640x480 \
        depth:=true scripted:=true

* ``arm`` (arm_node, ``port:=twin://<robot>?name=<name>...``): the real WidowX 250 / SO-100 driver
  on a byte-level servo bus whose servos are the twin's joints; MuJoCo runs on the wall clock
  in this process. Topics and services as on hardware (joint_states, joint_trajectory /
  joint_command, ~/torque, ~/estop, ...), plus the twin's ~/reset, ~/evaluate, instruction,
  ~/twin_status and the twin_fault parameter.
* ``camera_<name>`` (camera_node, ``source:=twin``): one free-running camera per twin camera,
  rendering the twin's state at its own capture instants (fps, clock offset, drift, drops:
  config/twin.yaml or ros2 param at start).
* ``teleop`` (teleop_node, ``mode:=scripted``, only with scripted:=true): the scripted expert
  planning from the twin and publishing at its own rate.

``name`` keeps twins apart: every node of one twin uses the same name, and two twins on one
machine need two names. See docs/twin.md.
"""

import os
import runpy

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "vla_robot_bringup"
ARGUMENTS = {
    "robot": ("widowx250", "twin arm model: widowx250 | so100"),
    "name": ("twin", "name of this twin instance (its nodes share it; a second twin needs another)"),
    "task": ("grinning_face", "grinning_face | reach | push"),
    "seed": ("0", "first episode seed"),
    "rate_factor": ("1.0", "sim seconds per wall second"),
    "cameras": ("third_person,wrist", "comma-separated twin cameras"),
    "size": ("128x128", "image WIDTHxHEIGHT"),
    "fps": ("30.0", "camera frame rate"),
    "depth": ("false", "the cameras also publish depth (<camera>/depth/image_raw, 16UC1 mm)"),
    "publish_rate_hz": ("100.0", "joint state rate of the arm node"),
    "scripted": ("false", "drive the arm with the scripted expert at once"),
    "sensor_qos": ("sensor_data", "images + joint states: sensor_data (best effort) | reliable"),
    "dds_profile": ("large_frames", "Fast DDS profile of the nodes: large_frames | none | an XML path (dds.launch.py)"),
}
DRIVER = {"widowx250": "widowx", "so100": "so100"}


def twin_address(arg: dict) -> str:
    return f"twin://{arg['robot']}?name={arg['name']}&seed={arg['seed']}&task={arg['task']}&rate={arg['rate_factor']}"


def twin_nodes(arg: dict, teleop_enabled: bool | None) -> list:
    """The twin's nodes (shared with collect.launch.py); ``teleop_enabled`` None: no teleop node."""
    if arg["robot"] not in DRIVER:
        raise RuntimeError(f"twin.launch.py: robot:={arg['robot']} unknown; choose widowx250 or so100")
    config = os.path.join(get_package_share_directory(PACKAGE), "config", "twin.yaml")
    address = twin_address(arg)
    width, height = (int(v) for v in arg["size"].lower().split("x"))
    qos = arg["sensor_qos"]
    nodes = [Node(package=PACKAGE, executable="arm_node", name="arm", output="screen",
                  parameters=[config, {"robot": DRIVER[arg["robot"]], "port": address,
                                       "publish_rate_hz": float(arg["publish_rate_hz"]), "sensor_qos": qos}])]
    for camera in [c for c in arg["cameras"].split(",") if c]:
        nodes.append(Node(package=PACKAGE, executable="camera_node", name=f"camera_{camera}", output="screen",
                          parameters=[config, {"source": "twin", "camera_name": camera, "device": address,
                                               "width": width, "height": height, "fps": float(arg["fps"]),
                                               "depth": arg["depth"].lower() == "true", "sensor_qos": qos}]))
    if teleop_enabled is not None:
        nodes.append(Node(package=PACKAGE, executable="teleop_node", name="teleop", output="screen",
                          parameters=[config, {"mode": "scripted", "robot": arg["robot"], "twin": address,
                                               "enabled": teleop_enabled}]))
    return nodes


def _sibling(name: str) -> dict:
    """Another launch file of this package, the copy beside this one (installed or source): its namespace."""
    return runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.launch.py"))


def dds_actions(value: str) -> list:
    """The DDS profile's environment for the nodes (dds.launch.py, shared by every launch file)."""
    return _sibling("dds")["dds_actions"](value)


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    return dds_actions(arg["dds_profile"]) + twin_nodes(arg, True if arg["scripted"].lower() == "true" else None)


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
