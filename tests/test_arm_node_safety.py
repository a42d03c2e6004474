"""The arm node guards itself, over real DDS with the WidowX driver on a byte-level virtual bus:
e-stop from a foot-switch topic, the command watchdog, tracking error, servo hardware faults,
and torque off through the sleep pose. (The same node on the real-time twin, in separate
processes, is tested in tests/test_deploy_faults.py.)"""

import time

import numpy as np
import pytest
from test_ros_nodes import call, wait_for  # one copy of the DDS test helpers

pytestmark = pytest.mark.ros


def blocked_chain(ids, blocked: set):
    """A virtual Dynamixel chain whose ``blocked`` servos do not move toward their goal (an obstacle)."""
    from vla_robot.robots.virtual_servos import VirtualDynamixelChain, virtual_chain

    class Blocked(VirtualDynamixelChain):
        def _after_write(self, servo, address, width):
            if servo.servo_id in blocked:
                return self._refresh_present(servo, velocity=0)
            return super()._after_write(servo, address, width)

    plain = virtual_chain("dynamixel", ids)
    return Blocked(plain.servos, plain.layout)


@pytest.fixture
def arm_stack(composed):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from vla_robot.robots.widowx import WidowX250, WidowXConfig
    from vla_robot.ros.arm_node import ArmNode
    from vla_robot.ros.qos import COMMAND_QOS

    blocked: set = set()
    chain = blocked_chain(WidowXConfig().motor_ids, blocked)
    robot = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    arm = composed.add(ArmNode({"robot": "widowx", "publish_rate_hz": 50.0, "cmd_timeout_s": 0.4,
                                "estop_topic": "/test_estop"}, robot=robot, context=composed.context))
    client = composed.add(Node("client", context=composed.context))
    diags = []
    client.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: diags.append(m) if m.status[0].name.endswith(": arm") else None, 10)
    cmd = client.create_publisher(JointState, "joint_command", COMMAND_QOS)
    composed.start()
    assert wait_for(lambda: arm.count_subscribers("joint_command") or True)
    return arm, robot, chain, client, cmd, diags, blocked


def command(arm, pub, targets):
    from vla_robot.ros.conversions import joint_state_msg

    pub.publish(joint_state_msg(arm.names, targets, None, time.time()))


def drive_to(arm, robot, pub, targets, timeout=10.0):
    """Command ``targets`` at 20 Hz until the driver has written them (discovery, velocity clamp)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command(arm, pub, targets)
        if robot.last_targets is not None and np.allclose(robot.last_targets, targets):
            return True
        time.sleep(0.05)
    return False


def latest(diags):
    from vla_robot.ros.diagnostics import status_level, status_values

    return status_level(diags[-1]), diags[-1].status[0].message, status_values(diags[-1])


def test_estop_topic_watchdog_and_start(arm_stack):
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    from vla_robot.ros.qos import COMMAND_QOS

    arm, robot, chain, client, cmd, diags, _ = arm_stack
    target = np.array([0.1, -0.2, 0.3, 0.0, 0.4, 0.0, 0.02])
    assert drive_to(arm, robot, cmd, target)
    # the watchdog: no command for cmd_timeout_s -> a hold (unlatched by default: the next command resumes)
    assert wait_for(lambda: arm.guard.hold is not None and arm.guard.hold.reason == "command_timeout")
    assert wait_for(lambda: diags and "no command" in latest(diags)[1], 5.0)
    assert latest(diags)[0] == 1  # WARN
    command(arm, cmd, target + 0.01)
    assert wait_for(lambda: arm.guard.hold is None or arm.guard.hold.reason != "command_timeout" or
                    arm.guard.counts["resumed"] >= 1)
    assert arm.guard.counts["resumed"] >= 1
    # a foot switch publishes True on the e-stop topic
    switch = client.create_publisher(Bool, "/test_estop", COMMAND_QOS)
    n = len(chain.written)
    assert wait_for(lambda: (switch.publish(Bool(data=True)) or True) and arm.guard.estopped, 10.0)
    assert all(chain.torque_enabled(sid) for sid in robot.ids)
    assert len(chain.written) > n  # the hold goal went out on the bus at once
    held = robot.last_targets.copy()
    command(arm, cmd, target - 0.2)
    assert wait_for(lambda: arm.guard.counts["refused_while_held"] >= 1)
    np.testing.assert_allclose(robot.last_targets, held)
    assert wait_for(lambda: diags and latest(diags)[0] == 2, 5.0)  # ERROR while e-stopped
    assert "e-stop" in latest(diags)[1] and latest(diags)[2]["guard.estopped"] == "True"
    switch.publish(Bool(data=False))  # releasing the switch releases nothing
    time.sleep(0.3)
    assert arm.guard.estopped
    assert call(client, Trigger, "/arm/release_estop").success
    assert call(client, Trigger, "/arm/start").success
    assert drive_to(arm, robot, cmd, target)


def test_tracking_error_and_servo_fault_hold_and_report(arm_stack):
    from std_srvs.srv import Trigger

    arm, robot, chain, client, cmd, diags, blocked = arm_stack
    start = robot.read_state().positions
    blocked.add(2)  # the shoulder meets an obstacle
    target = start.copy()
    target[1] += 0.9
    deadline = time.monotonic() + 10
    while arm.guard.hold is None and time.monotonic() < deadline:  # keep commanding, as a policy would
        command(arm, cmd, target)
        time.sleep(0.05)
    hold = arm.guard.hold
    assert hold is not None and hold.reason == "tracking_error" and "shoulder" in hold.message
    measured = robot.read_state().positions
    np.testing.assert_allclose(robot.last_targets[:-1], measured[:-1], atol=2e-3)  # stopped pushing
    assert wait_for(lambda: diags and latest(diags)[0] == 2 and "shoulder" in latest(diags)[1], 5.0)
    blocked.clear()
    assert call(client, Trigger, "/arm/start").success

    chain.servos[4].table[70] = 0x20  # the elbow reports overload
    command(arm, cmd, measured)
    assert wait_for(lambda: arm.guard.hold is not None and arm.guard.hold.reason == "hardware_error")
    assert "servo 4: overload" in arm.guard.hold.message
    assert wait_for(lambda: diags and "overload" in latest(diags)[1] and latest(diags)[0] == 2, 5.0)
    reply = call(client, Trigger, "/arm/start")
    assert not reply.success and "overload" in reply.message  # not while the fault persists
    chain.servos[4].table[70] = 0
    assert wait_for(lambda: not arm.guard.faults)
    assert call(client, Trigger, "/arm/start").success


def test_torque_off_goes_to_the_sleep_pose_first_and_warns_what_falls(arm_stack):
    from std_srvs.srv import SetBool

    arm, robot, chain, client, cmd, diags, _ = arm_stack
    reply = call(client, SetBool, "/arm/torque", data=False)
    assert reply.success and "sleep pose" in reply.message
    assert all(chain.torque_enabled(sid) for sid in robot.ids)  # not yet: first the move
    assert wait_for(lambda: not any(chain.torque_enabled(sid) for sid in robot.ids), 30.0)
    np.testing.assert_allclose(robot.read_state().positions[:-1], arm.spec.sleep[:-1], atol=3e-3)
    # the model has no cradle: it says which joints carry gravity at the pose where torque went off
    assert "torque off at the sleep pose" in arm.last_error and "shoulder" in arm.last_error
    assert call(client, SetBool, "/arm/torque", data=True).success
    assert all(chain.torque_enabled(sid) for sid in robot.ids)


def test_a_servo_that_stops_answering_holds_the_rest_and_start_waits_for_the_bus(arm_stack):
    from std_srvs.srv import Trigger

    arm, robot, chain, client, cmd, diags, _ = arm_stack
    assert drive_to(arm, robot, cmd, np.array([0.1, -0.2, 0.3, 0.0, 0.4, 0.0, 0.02]))
    chain.silent_ids.add(4)  # the elbow servo unplugged: sync reads lose it
    assert wait_for(lambda: arm.guard.hold is not None and arm.guard.hold.reason == "bus_error", 10.0)
    assert wait_for(lambda: diags and latest(diags)[0] == 2 and "servo bus" in latest(diags)[1], 5.0)
    reply = call(client, Trigger, "/arm/start")
    assert not reply.success and "not answering" in reply.message
    chain.silent_ids.clear()
    assert wait_for(lambda: arm._read_failures == 0, 5.0)
    assert call(client, Trigger, "/arm/start").success
