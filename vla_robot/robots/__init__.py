"""One robot interface for the WidowX 250, the SO-100 and the MuJoCo twin."""

from vla_robot.robots.interface import Robot, RobotState
from vla_robot.robots.specs import ROBOT_SPECS, RobotSpec, get_robot_spec
from vla_robot.robots.limits import JointLimitClamp

__all__ = ["Robot", "RobotState", "RobotSpec", "ROBOT_SPECS", "get_robot_spec", "JointLimitClamp"]
