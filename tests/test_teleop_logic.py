"""Teleop logic without ROS: EE velocity teleop with IK on the twin's arm model, Joy and
keyboard mapping, leader-follower."""

import numpy as np
import pytest

from vla_robot.robots.specs import SO100, WIDOWX_250
from vla_robot.teleop.inputs import JoyMapping, keyboard_twist
from vla_robot.teleop.leader_follower import LeaderFollowerMap


@pytest.fixture(scope="module")
def kinematics():
    from vla_robot.teleop.kinematics import ArmKinematics

    return ArmKinematics("widowx250")


def test_ee_teleop_moves_the_tcp_along_the_commanded_axis(kinematics):
    from vla_robot.teleop.ee_teleop import EETeleop

    ee = EETeleop(kinematics)
    ee.sync(np.array(WIDOWX_250.home))
    start, quat0 = kinematics.forward(np.array(WIDOWX_250.home[:-1]))
    for _ in range(20):  # 20 x 0.05 s at full +x speed (0.15 m/s) = 0.15 m
        q = ee.step(np.array([1.0, 0, 0]), np.zeros(3), 0.0, 0.05)
    pos, quat = kinematics.forward(q[:-1])
    np.testing.assert_allclose(pos - start, [0.15, 0, 0], atol=0.01)
    assert abs(abs(np.dot(quat, quat0)) - 1) < 1e-3  # orientation held
    for _ in range(30):
        q = ee.step(np.zeros(3), np.zeros(3), -1.0, 0.05)
    assert q[-1] == pytest.approx(WIDOWX_250.gripper_closed)
    assert np.all(q[:-1] >= WIDOWX_250.lower_array[:-1]) and np.all(q[:-1] <= WIDOWX_250.upper_array[:-1])


def test_ee_teleop_stops_at_the_workspace_edge(kinematics):
    from vla_robot.teleop.ee_teleop import EETeleop, EETeleopConfig

    ee = EETeleop(kinematics, EETeleopConfig(workspace_max=(0.45, 0.4, 0.45)))
    ee.sync(np.array(WIDOWX_250.home))
    for _ in range(100):
        q = ee.step(np.array([1.0, 0, 0]), np.zeros(3), 0.0, 0.05)
    pos, _ = kinematics.forward(q[:-1])
    assert pos[0] <= 0.45 + 0.01


def test_joy_mapping_needs_the_deadman_and_ignores_noise():
    m = JoyMapping(deadman_button=5, deadzone=0.1)
    axes = [0.0, 0.8, 0.0, 0.0, -0.05, 0.0]
    buttons = [0, 1, 0, 0, 0, 0]
    idle = m.twist(axes, buttons)
    assert not idle.linear.any() and idle.gripper == 0.0
    buttons[5] = 1
    t = m.twist(axes, buttons)
    np.testing.assert_allclose(t.linear, [0.8, 0.0, 0.0])  # axis 4 below the deadzone
    assert t.gripper == 1.0
    assert m.twist([float("nan")] * 6, buttons).linear.tolist() == [0, 0, 0]


def test_keyboard_bindings():
    assert keyboard_twist("w").linear.tolist() == [1, 0, 0]
    assert keyboard_twist("F").linear.tolist() == [0, 0, -1]
    assert keyboard_twist("c").gripper == -1.0
    assert keyboard_twist("z") is None


def test_leader_follower_maps_joint_by_joint():
    lf = LeaderFollowerMap(SO100, signs=(1, -1, 1, 1, 1, 1), offsets=(0, 0, 0.1, 0, 0, 0))
    q = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    np.testing.assert_allclose(lf.targets(q), [0.1, -0.2, 0.4, 0.4, 0.5, 0.6])
    with pytest.raises(ValueError, match="needs 6"):
        lf.targets(np.zeros(7))
    with pytest.raises(ValueError, match="signs: need 6"):
        LeaderFollowerMap(SO100, signs=(1, 1))
