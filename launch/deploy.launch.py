"""Deploy a policy bundle on a robot PC: arm node + camera nodes + policy node.

    ros2 launch vla_robot_bringup deploy.launch.py robot:=widowx policy:=/path/to/bundle \
        port:=/dev/ttyUSB0 cameras:=third_person camera_source:=realsense \
        instruction:="put the cube on the grinning face"
    ros2 launch vla_robot_bringup deploy.launch.py robot:=sim policy:=/path/to/bundle   # the real-time twin + policy

The policy node waits for `ros2 service call /policy/start std_srvs/srv/Trigger` unless
autostart:=true (which starts it once, never again after a stop or e-stop).
E-stop (stop category 2: hold with torque on, latched): `ros2 service call /arm/estop
std_srvs/srv/Trigger`, or `true` on the `/estop` topic (std_msgs/Bool) from a button node.
A software e-stop does not replace a power-cutting hardware e-stop (docs/deploy.md, "Safety").

Defaults chosen for a first run on a real arm: the control rate is the bundle's own
(control_hz:=0; another rate needs control_hz_override:=true), the policy may use a quarter
of the joint speed limits on hardware (velocity_scale; 1.0 in the twin), and the arm node's
command watchdog latches (a restarted policy does not move the arm until /policy/start).
Without a ROS install, `vla-robot deploy --robot sim --policy PATH` composes the same nodes.
"""

import os
import runpy

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "vla_robot_bringup"
ARGUMENTS = {
    "robot": ("widowx", "widowx | so100 | sim"),
    "policy": ("", "policy bundle directory (required)"),
    "port": ("/dev/ttyUSB0", "serial port of the arm bus"),
    "calibration_path": ("", "SO-100 calibration JSON"),
    "cameras": ("third_person", "comma-separated camera names, as the bundle names them"),
    "camera_source": ("realsense", "realsense | opencv"),
    "camera_devices": ("", "comma-separated serials (realsense) or /dev/videoN (opencv), one per camera"),
    "instruction": ("", "language instruction (also settable on the `instruction` topic)"),
    "control_hz": ("0", "control rate in Hz; 0 = the bundle's training rate"),
    "control_hz_override": ("false", "true: run at control_hz even if the bundle was trained at another rate"),
    "velocity_scale": ("", "fraction of the joint velocity limits the policy may use; default 0.25 on hardware, 1.0 in sim"),
    "execute_steps": ("0", "use at most this many steps of each action chunk (0 = all)"),
    "cmd_timeout_s": ("0.5", "arm node: no command for this long holds the arm (latched on hardware)"),
    "max_obs_age": ("0.5", "policy: hold when the newest camera frame or joint state is older (s)"),
    "max_stall": ("1.0", "policy: hold when no action has been available for this long (s)"),
    "estop_topic": ("/estop", "std_msgs/Bool topic a foot switch or button publishes true on; empty = none"),
    "twin_name": ("twin", "robot:=sim: name of the real-time twin instance (a second twin needs another)"),
    "size": ("128x128", "robot:=sim: twin camera images WIDTHxHEIGHT"),
    "device": ("cpu", "cpu | cuda | cuda:N"),
    "dtype": ("float32", "float32 | bfloat16 | float16"),
    "asynchronous": ("true", "compute the next chunk while the current one executes"),
    "autostart": ("false", "start as soon as an instruction and joint states are there"),
    "dds_profile": ("large_frames", "Fast DDS profile of the nodes: large_frames | none | an XML path (dds.launch.py)"),
}

ROBOT_SPECS = {"widowx": "widowx250", "so100": "so100", "sim": "widowx250"}
HARDWARE_VELOCITY_SCALE = 0.25  # as vla_robot.policy.runtime_args (launch files do not import the project)


def _sibling(name: str) -> dict:
    """Another launch file of this package, the copy beside this one (installed or source): its namespace."""
    return runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.launch.py"))


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if not arg["policy"]:
        raise RuntimeError("deploy.launch.py: policy:=PATH (a bundle directory) is required")
    robot = arg["robot"]
    if robot not in ROBOT_SPECS:
        raise RuntimeError(f"deploy.launch.py: robot:={robot} unknown; choose widowx, so100 or sim")
    actions = []
    guard = {"cmd_timeout_s": float(arg["cmd_timeout_s"]), "cmd_timeout_latch": True, "estop_topic": arg["estop_topic"]}
    if robot == "sim":  # the real-time twin's own nodes (twin.launch.py), its arm node guarded as on hardware
        twin = _sibling("twin")
        twin_arg = {name: default for name, (default, _) in twin["ARGUMENTS"].items()}
        twin_arg.update(name=arg["twin_name"], cameras=arg["cameras"], size=arg["size"])
        actions += twin["twin_nodes"](twin_arg, None)
        actions[0].kwargs["parameters"].append(guard)
    else:
        arm_params = {"robot": robot, "port": arg["port"], **guard}
        if arg["calibration_path"]:
            arm_params["calibration_path"] = arg["calibration_path"]
        actions.append(Node(package=PACKAGE, executable="arm_node", name="arm", parameters=[arm_params], output="screen"))
        cameras = [c for c in arg["cameras"].split(",") if c]
        devices = [d for d in arg["camera_devices"].split(",")] if arg["camera_devices"] else [""] * len(cameras)
        for name, device in zip(cameras, devices + [""] * (len(cameras) - len(devices))):
            cam_params = {"source": arg["camera_source"], "camera_name": name}
            if device:
                cam_params["device"] = device
            actions.append(Node(package=PACKAGE, executable="camera_node", name=f"camera_{name}",
                                parameters=[cam_params], output="screen"))
    scale = arg["velocity_scale"] or str(1.0 if robot == "sim" else HARDWARE_VELOCITY_SCALE)
    policy_params = {
        "policy": arg["policy"],
        "robot": ROBOT_SPECS[robot],
        "instruction": arg["instruction"],
        "control_hz": float(arg["control_hz"]),
        "control_hz_override": arg["control_hz_override"].lower() == "true",
        "velocity_scale": float(scale),
        "execute_steps": int(arg["execute_steps"]),
        "max_obs_age": float(arg["max_obs_age"]),
        "max_stall": float(arg["max_stall"]),
        "estop_topic": arg["estop_topic"],
        "device": arg["device"],
        "dtype": arg["dtype"],
        "asynchronous": arg["asynchronous"].lower() == "true",
        "autostart": arg["autostart"].lower() == "true",
    }
    actions.append(Node(package=PACKAGE, executable="policy_node", name="policy", parameters=[policy_params],
                        output="screen"))
    dds = _sibling("dds")
    return dds["dds_actions"](arg["dds_profile"]) + actions  # the environment first, for every node


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
