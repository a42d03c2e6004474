"""Recording stand-ins for the ROS 2 launch packages, shared by the launch-file tests.

`launch`/`launch_ros`/`ament_index_python` are not installable from PyPI, so they are
replaced in ``sys.modules`` by stand-ins whose actions only record their arguments; the
launch file's own logic (which nodes, which parameters) then runs for real.
"""

import sys
import types
from pathlib import Path
from typing import Callable


class Recorded:
    """Any launch action or description: keeps what it was built with, for the test to inspect."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class SetEnvironmentVariable(Recorded):
    """``launch.actions.SetEnvironmentVariable(name, value)``: every process started after it gets it."""

    @property
    def variable(self) -> tuple[str, str]:
        return str(self.args[0]), str(self.args[1])


class LaunchConfiguration:
    """Resolves against a plain dict standing in for the launch context."""

    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def standin_modules(share_directory: Callable[[str], str]) -> dict:
    """The stand-in modules by name; ``share_directory`` answers get_package_share_directory."""
    return {
        "ament_index_python": types.ModuleType("ament_index_python"),
        "ament_index_python.packages": types.SimpleNamespace(get_package_share_directory=share_directory),
        "launch": types.SimpleNamespace(LaunchDescription=Recorded),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=Recorded, IncludeLaunchDescription=Recorded,
                                                OpaqueFunction=Recorded, SetEnvironmentVariable=SetEnvironmentVariable),
        "launch.launch_description_sources": types.SimpleNamespace(PythonLaunchDescriptionSource=Recorded),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.SimpleNamespace(Node=Recorded),
    }


def install_launch_standins(monkeypatch, share_directory: Callable[[str], str]) -> None:
    """Put the stand-ins in ``sys.modules`` for this test; ``share_directory`` answers get_package_share_directory."""
    for name, module in standin_modules(share_directory).items():
        monkeypatch.setitem(sys.modules, name, module)


def exec_launch_file(path: Path, module_name: str) -> dict:
    """Run a launch file (stand-ins installed first) and return its module namespace."""
    namespace: dict = {"__name__": module_name, "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def launch_context(namespace: dict, values: dict) -> dict:
    """The launch file's ARGUMENTS defaults, overridden by ``values``."""
    context = {name: default for name, (default, _) in namespace["ARGUMENTS"].items()}
    context.update(values)
    return context
