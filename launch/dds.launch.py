"""The DDS profile every vla-robot launch file gives the nodes it starts.

    ros2 launch vla_robot_bringup collect.launch.py dds_profile:=none           # Fast DDS defaults
    ros2 launch vla_robot_bringup collect.launch.py dds_profile:=~/my_fastdds.xml

Camera frames cross processes: with Fast DDS' default transports two 640x480 cameras plus depth
at 29.97 fps lost 2-55 frames in 60-120 s between a reliable KEEP_LAST-10 publisher and the
recorder (bench/bench_realtime.py, issue #13). config/fastdds_large_frames.xml (a 32 MiB
shared-memory segment, 100 ms heartbeats) lost none. collect, deploy and twin launch files set
``FASTDDS_DEFAULT_PROFILES_FILE`` to it for their nodes, unless the operator exported a profile
already (theirs wins over the default) or passes ``dds_profile:=none``. Other RMWs ignore it.
The file is also loadable on its own, to put in front of a launch of one's own.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration

PACKAGE = "vla_robot_bringup"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
DEFAULT = "large_frames"
ARGUMENTS = {
    "dds_profile": (DEFAULT, "Fast DDS profile of the nodes: large_frames (config/fastdds_large_frames.xml; an "
                             "exported FASTDDS_DEFAULT_PROFILES_FILE wins) | none (Fast DDS defaults) | an XML path"),
}


def dds_profile_path(value: str, share: str, environ=os.environ) -> str | None:
    """The profile file the nodes get, or None to leave their environment as it is."""
    value = value.strip()
    if value.lower() == "none":
        return None
    if value == DEFAULT:
        if any(environ.get(name) for name in PROFILE_VARIABLES):
            return None  # the operator's own profile
        path = os.path.join(share, "config", "fastdds_large_frames.xml")
    else:
        path = os.path.abspath(os.path.expanduser(value))
    if not os.path.isfile(path):
        raise RuntimeError(f"dds_profile:={value}: {path} is not a file; pass an existing Fast DDS XML profile, "
                           f"{DEFAULT} (the package's) or none")
    return path


def dds_actions(value: str) -> list:
    """SetEnvironmentVariable actions to put before the Node actions of a launch file."""
    path = dds_profile_path(value, get_package_share_directory(PACKAGE))
    return [] if path is None else [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", path)]


def _actions(context):
    return dds_actions(LaunchConfiguration("dds_profile").perform(context))


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_actions)])
