"""The arm's own guard as plain bookkeeping on a fake clock: latches, watchdog, tracking error, faults,
and the torque-off move to the sleep pose."""

import numpy as np
import pytest

from vla_robot.robots.guard import ERROR, OK, WARN, ArmGuard, GuardConfig
from vla_robot.robots.sleep import SleepMove, falling_joints
from vla_robot.robots.specs import SO100, WIDOWX_250

HOME = np.asarray(WIDOWX_250.home)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def guard(**kw):
    clock = Clock()
    g = ArmGuard(WIDOWX_250, GuardConfig(**kw), clock=clock)
    return g, clock


def follow(g, targets):
    assert g.admit()
    g.sent(targets)


def test_estop_holds_the_last_command_latches_and_release_alone_resumes_nothing():
    g, clock = guard()
    cmd = HOME + 0.1
    cmd[-1] = WIDOWX_250.gripper_closed  # a closed gripper must stay closed
    follow(g, cmd)
    measured = HOME + 0.08  # the arm lags (and sags) below its command
    hold = g.estop(measured, "test")
    np.testing.assert_allclose(hold.target, cmd)  # the command, not the sagging measurement
    assert hold.latched and g.level == ERROR
    assert not g.admit() and g.counts["refused_while_held"] == 1
    ok, message = g.start()
    assert not ok and "release_estop" in message
    g.release_estop()
    assert not g.admit()  # released, still held: release never moves the arm
    assert g.start()[0] and g.admit()
    assert g.report()["count.estop"] == 1


def test_stop_latches_and_never_clears_an_estop():
    g, _ = guard()
    follow(g, HOME)
    assert g.stop(HOME).reason == "stop" and not g.admit()
    g.estop(HOME)
    assert g.stop(HOME).reason == "estop"  # a later stop does not downgrade the e-stop
    assert not g.start()[0]


def test_command_timeout_holds_unlatched_or_latched():
    g, clock = guard(cmd_timeout_s=0.5)
    assert g.check(HOME) is None  # never commanded: nothing to watch
    follow(g, HOME + 0.05)
    clock.t += 0.4
    assert g.check(HOME + 0.05) is None
    clock.t += 0.2
    hold = g.check(HOME + 0.05)
    assert hold.reason == "command_timeout" and not hold.latched and g.level == WARN
    np.testing.assert_allclose(hold.target, HOME + 0.05)
    assert g.check(HOME) is None  # one hold, not one per check
    assert g.admit() and g.hold is None and g.counts["resumed"] == 1  # the commander is back

    g, clock = guard(cmd_timeout_s=0.5, cmd_timeout_latch=True)
    follow(g, HOME)
    clock.t += 1.0
    assert g.check(HOME).latched
    assert not g.admit()  # a restarted policy does not move the arm by itself
    assert g.start()[0]
    clock.t += 10.0
    assert g.check(HOME) is None  # after start the watchdog waits for the first new command


def test_tracking_error_must_persist_then_holds_where_the_arm_is():
    g, clock = guard(tracking_error=0.3, tracking_error_s=0.3)
    cmd = HOME.copy()
    cmd[1] += 0.5
    cmd[-1] = WIDOWX_250.gripper_closed
    follow(g, cmd)
    blocked = HOME.copy()
    blocked[-1] = 0.025  # the gripper stopped on the object: never a tracking error
    assert g.check(blocked) is None  # a large step the servo is still catching up on
    clock.t += 0.2
    assert g.admit()
    assert g.check(blocked) is None
    clock.t += 0.15
    hold = g.check(blocked)
    assert hold is not None and hold.reason == "tracking_error" and hold.latched and g.level == ERROR
    assert "shoulder" in hold.message
    np.testing.assert_allclose(hold.target[:-1], blocked[:-1])  # stop pushing: hold where it is ...
    assert hold.target[-1] == WIDOWX_250.gripper_closed  # ... but keep the grip
    g2, clock2 = guard(tracking_error=0.3, tracking_error_s=0.3)
    follow(g2, cmd)
    for _ in range(10):  # brief excursions that recover never trip
        assert g2.admit()
        assert g2.check(blocked) is None
        clock2.t += 0.1
        assert g2.check(cmd) is None


def test_hardware_fault_holds_latched_and_start_is_refused_while_it_persists():
    g, _ = guard()
    follow(g, HOME)
    assert g.report_faults({}, HOME) is None
    hold = g.report_faults({4: ["overload"]}, HOME)
    assert hold.reason == "hardware_error" and "servo 4: overload" in hold.message and hold.latched
    assert g.report_faults({4: ["overload"]}, HOME) is None  # the same fault is reported once
    ok, message = g.start()
    assert not ok and "overload" in message
    assert g.report_faults({}, HOME) is None
    assert g.start()[0] and g.level == OK


def test_guard_config_validates():
    with pytest.raises(ValueError, match="cmd_timeout_s"):
        GuardConfig(cmd_timeout_s=0)
    with pytest.raises(ValueError, match="tracking_error"):
        GuardConfig(tracking_error=float("nan"))


def test_sleep_move_is_rate_limited_and_ends_at_the_sleep_pose():
    clock = Clock()
    start = np.asarray(WIDOWX_250.home)
    move = SleepMove(WIDOWX_250, start, speed_scale=0.25, clock=clock)
    command, steps = start, 0
    while not move.arrived(command):
        clock.t += 0.02
        nxt = move.step(command)
        assert np.all(np.abs(nxt - command) <= WIDOWX_250.max_velocity_array * 0.25 * 0.02 + 1e-12)
        command, steps = nxt, steps + 1
        assert steps < 1000
    np.testing.assert_allclose(command, WIDOWX_250.sleep)
    assert not move.timed_out
    clock.t += 100
    assert move.timed_out


def test_fall_warning_names_the_joints_gravity_pulls_on():
    # an outstretched WidowX: the shoulder and elbow carry the whole arm
    out = np.array([0.0, 0.8, -0.8, 0.0, 0.0, 0.0, 0.03])
    joints = falling_joints(WIDOWX_250, out)
    assert set(joints) >= {"shoulder", "elbow"} and "waist" not in joints
    assert abs(joints["shoulder"]) > 0.5
    # the SO-100 pointing straight up is balanced: nothing carries a load
    assert falling_joints(SO100, np.array([0.0, -1.5, -0.15, 0.15, 0.0, 0.0])) == {}


def test_a_silent_bus_holds_latched_and_an_existing_latch_is_kept():
    g, _ = guard()
    assert g.bus_lost("no reply") is None  # nothing sent yet: nothing to hold
    follow(g, HOME + 0.1)
    hold = g.bus_lost("5 reads failed")
    assert hold.reason == "bus_error" and hold.latched and g.level == ERROR
    np.testing.assert_allclose(hold.target, HOME + 0.1)
    assert not g.admit()
    g2, _ = guard()
    follow(g2, HOME)
    g2.estop(HOME)
    assert g2.bus_lost("gone") is None and g2.hold.reason == "estop"  # the e-stop stays what it is
