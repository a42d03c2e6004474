"""ament_python package: executables point at the vla_robot modules; launch files come from
the repository's top-level launch/ folder (``launch`` here is a symlink to it) so there is
one copy of each."""

from glob import glob

from setuptools import setup

PACKAGE = "vla_robot_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.xml"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vla-robot developers",
    maintainer_email="dev@example.com",
    description="Launch files, parameters and node executables of vla-robot.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "arm_node = vla_robot.ros.arm_node:main",
            "camera_node = vla_robot.ros.camera_node:main",
            "teleop_node = vla_robot.ros.teleop_node:main",
            "recorder_node = vla_robot.ros.recorder_node:main",
            "console_node = vla_robot.ros.console_node:main",
            "policy_node = vla_robot.ros.policy_node:main",
        ],
    },
)
