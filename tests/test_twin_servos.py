"""The unmodified WidowX 250 and SO-100 drivers on the real-time twin's byte-level servo bus.

The twin's clock is stepped by hand here (``RealtimeTwin.advance``): the same physics and
servo firmware as on the wall clock, with sim time the only time, so the checks are exact
and independent of machine load. tests/test_twin_processes.py runs the same arm on the wall
clock in separate processes.
"""

import math
import os

import numpy as np
import pytest

from vla_robot.robots.servo_bus import ServoBusError

DXL_HW_ERROR, DXL_TORQUE, DXL_OPERATING_MODE, DXL_GOAL_PWM, DXL_PROFILE_VELOCITY = 70, 64, 11, 100, 112
STS_STATUS, STS_LOAD, STS_GOAL_SPEED = 65, 60, 46


@pytest.fixture
def twin_arm(request):
    """``twin_arm("widowx" | "so100")``: a connected driver on a twin whose clock the test advances."""
    from sim.realtime import make_twin_robot

    made = []

    def make(kind: str):
        arm = "so100" if kind == "so100" else "widowx250"
        robot = make_twin_robot(kind, f"twin://{arm}?name=servo{os.getpid()}_{len(made)}", start=False)
        made.append(robot)
        robot.connect()
        return robot, robot.twin_host

    yield make
    for robot in made:
        robot.twin_host.close()


def run(robot, host, targets, seconds, period=0.02):
    """Stream ``targets`` at 50 Hz for ``seconds`` of twin time; returns the states read meanwhile.

    Goals go on the bus as the driver encodes them (``JointTicks``) but without its safety
    clamp: that one limits speed over *wall-clock* time, which a hand-stepped twin outruns.
    """
    states = []
    for _ in range(round(seconds / period)):
        if targets is not None:
            robot.bus.write_goal_positions({j.servo_id: j.to_ticks(v) for j, v in zip(robot.joints, targets)})
        host.advance(period)
        states.append(robot.read_state())
    return states


@pytest.mark.parametrize("kind", ["widowx", "so100"])
def test_positions_follow_goals_and_velocities_are_read(twin_arm, kind):
    robot, host = twin_arm(kind)
    home = robot.read_state().positions
    np.testing.assert_allclose(home, robot.spec.home, atol=2e-3)  # the twin starts at home, read through the bus
    target = home + np.array([0.3, 0.2, -0.2, 0.2, 0.3, 0.0] + ([0.0] if kind == "widowx" else []))
    target[-1] = robot.spec.gripper_closed
    robot.send_joint_targets(target)  # through the driver's clamp: a first step toward the target
    assert np.abs(robot.last_targets - home).max() <= np.max(robot.spec.max_velocity) * robot.max_step_dt + 1e-9
    states = run(robot, host, target, 2.0)
    np.testing.assert_allclose(states[-1].positions, target, atol=0.01)
    assert max(abs(s.velocities[0]) for s in states) > 0.3  # present velocity is reported while moving
    assert abs(states[-1].velocities[0]) < 0.02


@pytest.mark.parametrize("kind", ["widowx", "so100"])
def test_torque_off_sags_under_gravity_and_torque_on_holds(twin_arm, kind):
    robot, host = twin_arm(kind)
    run(robot, host, None, 0.5)
    tcp = host.tcp()
    run(robot, host, None, 3.0)
    assert np.linalg.norm(host.tcp() - tcp) <= 0.002  # torque on: the servos hold against gravity
    robot.set_torque(False)
    before = robot.read_state().positions
    run(robot, host, None, 1.0)
    assert tcp[2] - host.tcp()[2] > 0.03  # limp: the arm falls (no passive gravity compensation left)
    assert np.abs(robot.read_state().positions - before).max() > 0.1  # joints turned under the arm's weight


def test_lock_stepped_twin_keeps_its_passive_gravity_compensation():
    """The real-time twin moves gravity compensation into the servos on its own model copy only."""
    from sim import Twin, TwinConfig

    twin = Twin(TwinConfig(cameras=()))
    m = twin.model
    assert not m.jnt_actgravcomp.any() and not m.jnt_actfrclimited.any()
    assert (m.body_gravcomp > 0).sum() >= 6 and m.actuator_forcelimited.all()


def test_profile_velocity_limits_the_speed_of_a_dynamixel(twin_arm):
    robot, host = twin_arm("widowx")
    waist = robot.ids[0]
    robot.bus.sync_write(DXL_PROFILE_VELOCITY, 4, {waist: 20})  # 20 x 0.229 rpm = 0.48 rad/s
    limit = 20 * 0.229 * 2 * math.pi / 60
    target = robot.read_state().positions.copy()
    target[0] = 1.0
    states = run(robot, host, target, 3.0)
    speeds = [abs(s.velocities[0]) for s in states]
    assert limit * 0.9 < max(speeds) <= limit * 1.05
    reached = next(i for i, s in enumerate(states) if abs(s.positions[0] - 1.0) < 0.01)
    assert reached * 0.02 >= 1.0 / limit * 0.95  # 1 rad at 0.48 rad/s takes about 2 s of twin time
    robot.bus.sync_write(DXL_PROFILE_VELOCITY, 4, {waist: 0})  # 0: no profile limit
    target[0] = 0.0
    fast = run(robot, host, target, 1.0)
    assert max(abs(s.velocities[0]) for s in fast) > 2 * limit


def test_goal_speed_limits_the_speed_of_a_feetech(twin_arm):
    robot, host = twin_arm("so100")
    robot.bus.sync_write(STS_GOAL_SPEED, 2, {robot.ids[0]: 300})  # 300 steps/s = 0.46 rad/s
    target = robot.read_state().positions.copy()
    target[0] = 0.8
    states = run(robot, host, target, 2.5)
    assert max(abs(s.velocities[0]) for s in states) <= 300 * 2 * math.pi / 4096 * 1.05
    assert abs(states[-1].positions[0] - 0.8) < 0.01


def test_dynamixel_overload_sets_hardware_error_and_shuts_the_torque_off(twin_arm):
    """A blocked elbow pushed against: Hardware Error Status bit 5, then Shutdown (default) cuts the torque
    and only a REBOOT re-arms the servo (ROBOTIS e-manual, XM430 Shutdown 63)."""
    robot, host = twin_arm("widowx")
    elbow = robot.ids[2]
    host.inject({"kind": "block_joint", "joint": "elbow"})
    target = robot.read_state().positions.copy()
    target[2] += 0.5
    run(robot, host, target, 0.5)
    assert robot.bus.sync_read(DXL_HW_ERROR, 1, [elbow])[elbow] == 0  # pushing, not yet persistent
    run(robot, host, target, 1.5)
    assert robot.bus.sync_read(DXL_HW_ERROR, 1, [elbow])[elbow] & 0x20  # overload bit
    assert robot.bus.sync_read(DXL_TORQUE, 1, [elbow])[elbow] == 0
    robot.bus.write(elbow, 65, 1, 1)  # carried out; the reply carries the Alert bit, which the bus records
    assert robot.bus.alerts[elbow] == 0x80 and robot.read_hardware_errors() == {elbow: ["overload"]}
    robot.set_torque(True)  # refused by the servo while shut down
    assert robot.bus.sync_read(DXL_TORQUE, 1, [elbow])[elbow] == 0
    host.inject({"kind": "release_joint", "joint": "elbow"})
    result, error = robot.bus.packet.reboot(robot.bus.port, elbow)
    assert result == 0 and error == 0
    assert robot.bus.sync_read(DXL_HW_ERROR, 1, [elbow])[elbow] == 0
    robot.set_torque(True)
    assert robot.bus.sync_read(DXL_TORQUE, 1, [elbow])[elbow] == 1


def test_feetech_overload_sets_status_and_cuts_output_to_protective_torque(twin_arm):
    robot, host = twin_arm("so100")
    lift = robot.ids[1]
    host.inject({"kind": "block_joint", "joint": "shoulder_lift"})
    target = robot.read_state().positions.copy()
    target[1] += 0.6
    run(robot, host, target, 2.5)  # Protection Time 200 x 10 ms
    assert robot.bus.sync_read(STS_STATUS, 1, [lift])[lift] & 0x20
    load = robot.bus.sync_read(STS_LOAD, 2, [lift])[lift] & 0x3FF  # 0.1 % of max torque, sign bit 10
    assert load <= 205  # Protective Torque 20 %
    robot.bus.write(lift, 41, 0, 1)  # carried out; the reply's error byte says overload, recorded by the bus
    assert robot.bus.alerts[lift] & 0x20 and robot.read_hardware_errors() == {lift: ["overload"]}
    robot.set_torque(False)  # torque off clears the protection
    assert robot.bus.sync_read(STS_STATUS, 1, [lift])[lift] == 0


def test_unplugged_servo_is_silent_and_limp_and_boots_with_torque_off(twin_arm):
    robot, host = twin_arm("widowx")
    host.inject({"kind": "unplug_servo", "joint": "shoulder"})
    with pytest.raises(ServoBusError, match="no data from id 2|sync read"):
        robot.read_state()
    tcp = host.tcp()
    host.advance(1.0)
    assert tcp[2] - host.tcp()[2] > 0.02  # the unpowered shoulder lets the arm fall
    host.inject({"kind": "replug_servo", "id": 2})
    robot.read_state()
    assert robot.bus.sync_read(DXL_TORQUE, 1, [2])[2] == 0  # booted: RAM at power-on values


def test_dynamixel_eeprom_is_locked_while_torque_is_on_and_pwm_mode_drives_the_gripper(twin_arm):
    """Interbotix runs the WidowX gripper in PWM mode; switching needs the torque off first."""
    robot, host = twin_arm("widowx")
    gripper = robot.ids[-1]
    with pytest.raises(ServoBusError, match="not available"):  # Access Error
        robot.bus.write(gripper, DXL_OPERATING_MODE, 16, 1)
    robot.bus.set_torque([gripper], False)
    robot.bus.write(gripper, DXL_OPERATING_MODE, 16, 1)
    robot.bus.write(gripper, DXL_GOAL_PWM, -300 & 0xFFFF, 2)  # close
    robot.bus.set_torque([gripper], True)
    opened = robot.read_state().positions[-1]
    host.advance(1.0)
    closed = robot.read_state().positions[-1]
    assert closed < opened - 0.01 and abs(closed - robot.spec.gripper_closed) < 0.003
    robot.send_joint_targets(robot.read_state().positions * 0 + np.array(robot.spec.home))  # goal positions
    host.advance(0.5)
    assert abs(robot.read_state().positions[-1] - closed) < 0.002  # are ignored in PWM mode


def test_twin_names_never_collide_and_mirrors_see_the_same_world(twin_arm):
    from sim.realtime import TwinNameInUse, make_twin_robot
    from sim.realtime.mirror import MirrorTwin

    robot, host = twin_arm("widowx")
    with pytest.raises(TwinNameInUse, match="in use by process"):
        make_twin_robot("widowx", f"twin://widowx250?name={host.name}", start=False)
    run(robot, host, np.array(robot.spec.home) + 0.1 * np.eye(7)[0], 1.0)
    mirror = MirrorTwin(host.name)
    try:
        mirror.sync()
        np.testing.assert_array_equal(mirror.twin.data.qpos, host.twin.data.qpos)
        assert mirror.twin.episode.instruction == host.twin.episode.instruction
        host.reset()
        mirror.sync()
        assert mirror.twin.episode.instruction == host.twin.episode.instruction
        np.testing.assert_array_equal(mirror.twin.layout.card_xy, host.twin.layout.card_xy)
    finally:
        mirror.close()


def test_external_torque_loads_the_holding_servo_and_moves_a_limp_joint(twin_arm):
    robot, host = twin_arm("widowx")
    elbow = robot.ids[2]
    run(robot, host, None, 0.5)
    current = lambda: robot.bus.sync_read(126, 2, [elbow])[elbow]  # Present Current (2.69 mA), two's complement
    signed = lambda raw: raw - 65536 if raw >= 32768 else raw
    before = signed(current())
    host.inject({"kind": "external_torque", "joint": "elbow", "torque": 3.0})
    run(robot, host, None, 0.5)
    loaded = signed(current())
    assert loaded - before < -0.25 * 2300 / 2.69 / 10 * 3.0  # the servo pushes back against +3 N*m (of its 10)
    q = robot.read_state().positions[2]
    assert 0.02 < q - robot.spec.home[2] < 0.06  # and holds it, deflected by load / stiffness (P-loop, I gain 0)
    robot.bus.set_torque([elbow], False)
    run(robot, host, None, 0.3)
    assert robot.read_state().positions[2] - q > 0.1  # limp: the load turns the joint
