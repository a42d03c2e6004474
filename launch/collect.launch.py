"""Collect demonstrations: arm + cameras + teleop + recorder.

    ros2 launch vla_robot_bringup collect.launch.py robot:=widowx cameras:=front,wrist \
        camera_source:=realsense camera_devices:=123456789,987654321 store:=~/demos/widowx.zarr
    ros2 launch vla_robot_bringup collect.launch.py robot:=so100 teleop:=leader cameras:=front \
        camera_source:=opencv camera_devices:=/dev/video0 calibration_path:=~/.config/vla_robot/so100.json
    ros2 launch vla_robot_bringup collect.launch.py robot:=sim          # real-time twin + scripted expert

Episode control: the recording console in a browser, http://127.0.0.1:8080/ (``console:=false`` turns it
off; ``console_host:=0.0.0.0`` needs ``console_token:=...`` or $VLA_CONSOLE_TOKEN), the gamepad
(Start = start, Y = save as success, X = save as failure, Back = discard; ``joy_*_button`` parameters
of the recorder), ``vla-robot console`` in a second terminal (ros2 launch gives nodes no keyboard), or
``ros2 service call /recorder/start std_srvs/srv/Trigger``,
``ros2 service call /recorder/save std_srvs/srv/SetBool "{data: true}"``,
``ros2 service call /recorder/discard std_srvs/srv/Trigger``,
``ros2 param set /recorder instruction "put the cube on the grinning face"``.
Per-arm defaults come from config/collect_<robot>.yaml in this package.

robot:=sim runs the real-time twin (twin.launch.py's nodes: arm_node on the twin's servo bus,
free-running twin cameras, the scripted expert as teleop), each its own process. The expert
waits: per episode, start recording, then
``ros2 service call /teleop/enable std_srvs/srv/SetBool "{data: true}"``; when ``/teleop/phase``
says done, ``ros2 service call /arm/evaluate std_srvs/srv/Trigger`` gives the verdict to save with.
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
    "robot": ("widowx", "widowx | so100 | sim"),
    "port": ("", "serial port of the arm bus (default from the YAML)"),
    "calibration_path": ("", "SO-100 calibration JSON"),
    "cameras": ("front,wrist", "comma-separated camera names (sim: third_person,wrist)"),
    "camera_source": ("realsense", "realsense | opencv"),
    "camera_devices": ("", "comma-separated serials (realsense) or /dev/videoN (opencv), one per camera"),
    "size": ("640x480", "camera WIDTHxHEIGHT (sim default 128x128)"),
    "fps": ("30.0", "camera frame rate"),
    "control_rate_hz": ("30.0", "recording rate (sim: 10.0)"),
    "teleop": ("joy", "joy | twist | leader | keyboard | none (sim: scripted expert)"),
    "leader_port": ("/dev/ttyACM1", "SO-100 leader arm port (teleop:=leader)"),
    "leader_calibration": ("", "SO-100 leader calibration JSON (teleop:=leader)"),
    "store": ("demos.zarr", "episode store (path or fsspec URL), appended to"),
    "action_source": ("arm", "recorded action: arm (what the arm executed, after its safety clamp) | teleop (the request)"),
    "instruction": ("", "initial language instruction"),
    "operator": ("", "operator name stored with each episode"),
    "preview_path": ("/tmp/vla_robot_preview.jpg", "live preview JPEG (headless)"),
    "sensor_qos": ("reliable", "images + joint states: reliable (no lost frames while recording) | sensor_data"),
    "sim_robot": ("widowx250", "robot:=sim: the twin's arm, widowx250 | so100"),
    "twin_name": ("collect", "robot:=sim: name of the twin instance (a second running twin needs another)"),
    "console": ("true", "serve the recording console in a browser (console_node)"),
    "console_host": ("127.0.0.1", "console address; any other interface needs console_token"),
    "console_port": ("8080", "console port"),
    "console_token": ("", "console access token, >= 16 characters (or set $VLA_CONSOLE_TOKEN)"),
    "dds_profile": ("large_frames", "Fast DDS profile of the nodes: large_frames | none | an XML path (dds.launch.py)"),
}
ARM_MODEL = {"widowx": "widowx250", "so100": "so100", "sim": "widowx250"}  # sim: sim_robot decides


def _sibling(name: str) -> dict:
    """Another launch file of this package, the copy beside this one (installed or source): its namespace."""
    return runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.launch.py"))


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    robot = arg["robot"]
    if robot not in ARM_MODEL:
        raise RuntimeError(f"collect.launch.py: robot:={robot} unknown; choose widowx, so100 or sim")
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config", f"collect_{robot}.yaml")
    width, height = (int(v) for v in arg["size"].lower().split("x"))
    cameras = [c for c in arg["cameras"].split(",") if c]
    actions = _sibling("dds")["dds_actions"](arg["dds_profile"])  # before any node: their environment
    arm_model = ARM_MODEL[robot]
    if robot == "sim":
        if cameras == ["front", "wrist"]:
            cameras = ["third_person", "wrist"]
        if arg["size"] == ARGUMENTS["size"][0]:
            width, height = 128, 128
        arm_model = arg["sim_robot"]
        twin = _sibling("twin")
        twin_arg = {name: default for name, (default, _) in twin["ARGUMENTS"].items()}
        twin_arg.update(robot=arm_model, name=arg["twin_name"], cameras=",".join(cameras), size=f"{width}x{height}",
                        fps=arg["fps"], sensor_qos=arg["sensor_qos"])
        actions += twin["twin_nodes"](twin_arg, teleop_enabled=False)  # the operator enables it per episode
    else:
        arm = {"robot": robot, "sensor_qos": arg["sensor_qos"]}
        if arg["port"]:
            arm["port"] = arg["port"]
        if arg["calibration_path"]:
            arm["calibration_path"] = os.path.expanduser(arg["calibration_path"])
        actions.append(Node(package=PACKAGE, executable="arm_node", name="arm", output="screen", parameters=[config, arm]))
        devices = arg["camera_devices"].split(",") if arg["camera_devices"] else []
        devices += [""] * (len(cameras) - len(devices))
        for name, device in zip(cameras, devices):
            cam = {"source": arg["camera_source"], "camera_name": name, "width": width, "height": height,
                   "fps": float(arg["fps"]), "sensor_qos": arg["sensor_qos"]}
            if device:
                cam["device"] = device
            actions.append(Node(package=PACKAGE, executable="camera_node", name=f"camera_{name}", output="screen",
                                parameters=[config, cam]))
        if arg["teleop"] != "none":
            teleop = _sibling("teleop")
            actions += teleop["teleop_nodes"]({"mode": arg["teleop"], "robot": ARM_MODEL[robot],
                                               "leader_port": arg["leader_port"],
                                               "leader_calibration": arg["leader_calibration"]})
    recorder = {
        "store": os.path.expanduser(arg["store"]),
        "robot": arm_model,
        "cameras": ",".join(cameras),
        "width": width,
        "height": height,
        "control_rate_hz": 10.0 if robot == "sim" else float(arg["control_rate_hz"]),
        "instruction": arg["instruction"],
        "operator": arg["operator"],
        "preview_path": arg["preview_path"],
        "console": False,  # no stdin under ros2 launch: `vla-robot console` in its own terminal
        "sensor_qos": arg["sensor_qos"],
        "action_source": arg["action_source"],
    }
    if robot == "sim":
        recorder["auto_reset_service"] = "/arm/reset"
    actions.append(Node(package=PACKAGE, executable="recorder_node", name="recorder", output="screen",
                        emulate_tty=True, parameters=[config, recorder]))
    if arg["console"].lower() == "true":
        console = {"store": recorder["store"], "robot": arm_model, "cameras": ",".join(cameras),
                   "action_source": arg["action_source"], "host": arg["console_host"],
                   "port": int(arg["console_port"])}
        if arg["console_token"]:
            console["token"] = arg["console_token"]
        actions.append(Node(package=PACKAGE, executable="console_node", name="console", output="screen",
                            parameters=[console]))
    return actions


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
