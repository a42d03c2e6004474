"""Teleop node: publishes joint targets (``joint_trajectory``) from one of five sources.

``mode``:
- ``scripted``: the twin's scripted expert. With ``twin`` set (a real-time twin's address,
  ``twin://widowx250?name=lab``) it runs in its own process, plans from a mirror of the twin
  and publishes at ``rate_hz`` on the wall clock (``~/phase`` tells the episode, phase and
  whether the plan is done); enabling it (``~/enable``) starts the plan from the present
  state. Composed in-process with the lock-stepped twin it answers each joint state it sees,
  stamped with that state, so the recorder pairs observation and action exactly.
- ``leader``: SO-100 leader-follower; ``leader/joint_states`` from a torque-off leader arm.
- ``joy`` / ``twist``: end-effector velocity from ``sensor_msgs/Joy`` or
  ``geometry_msgs/Twist`` (normalised to [-1, 1]), IK on the arm's MuJoCo model.
- ``keyboard``: the same EE teleop from keys in this node's terminal (w/s a/d r/f q/e, o/c gripper).
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from vla_robot.robots.specs import get_robot_spec
from vla_robot.ros.conversions import MessageError, from_time, joint_positions_from_msg, trajectory_msg
from vla_robot.ros.executor import spin_single
from vla_robot.ros.params import declare
from vla_robot.ros.qos import joint_qos, latest_qos, sensor_qos, COMMAND_QOS, LATCHED_QOS

MODES = ("scripted", "leader", "joy", "twist", "keyboard")

PARAMS = {
    "sensor_qos": "sensor_data",  # sensor_data (best effort) | reliable (composed stacks)
    "mode": "joy",
    "robot": "widowx250",  # arm model for joint names and IK: widowx250 | so100
    "rate_hz": 30.0,  # EE modes: command rate
    "enabled": True,  # scripted: start driving at once (the collect driver enables per episode)
    "max_linear_m_s": 0.15,
    "max_angular_rad_s": 1.0,
    "deadman_button": 5,
    "twin": "",  # scripted: the real-time twin's address (port of its arm node); "" = composed lock-step
}


class TeleopNode(Node):
    def __init__(self, overrides: dict | None = None, expert=None, twin_lock=None, name: str = "teleop", context=None):
        super().__init__(name, context=context)
        self.p = declare(self, PARAMS, overrides)
        self._sensor_qos = sensor_qos(self.p.sensor_qos)
        if self.p.mode not in MODES:
            raise ValueError(f"teleop mode {self.p.mode!r} unknown; choose one of {MODES}")
        self.spec = get_robot_spec(self.p.robot)
        self.names = list(self.spec.joint_names)
        self.enabled = bool(self.p.enabled)
        self.rejected = 0
        self.sent = 0
        self.expert = expert
        self.twin_lock = twin_lock or threading.RLock()
        self.cmd_pub = self.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
        self.done_pub = self.create_publisher(Bool, "~/done", LATCHED_QOS)
        self.create_service(SetBool, "~/enable", self._srv_enable)
        self._joint_positions: np.ndarray | None = None
        mode = self.p.mode
        if mode == "scripted" and expert is None:
            if not self.p.twin:
                raise ValueError("teleop mode 'scripted' needs the twin: set twin:=twin://widowx250?name=NAME (the "
                                 "arm node's port), or compose it with the lock-stepped twin (vla-robot collect)")
            from sim.realtime.expert import TwinExpertDriver

            self.driver = TwinExpertDriver(self.p.twin)
            self.phase_pub = self.create_publisher(String, "~/phase", LATCHED_QOS)
            self.create_timer(1.0 / self.p.rate_hz, self._expert_tick)
        elif mode == "scripted":
            self.create_subscription(JointState, "joint_states", self._on_state_scripted, latest_qos(self.p.sensor_qos))
        elif mode == "leader":
            from vla_robot.teleop.leader_follower import LeaderFollowerMap

            self.leader = LeaderFollowerMap(self.spec)
            self.create_subscription(JointState, "leader/joint_states", self._on_leader, joint_qos(self.p.sensor_qos))
        else:
            from vla_robot.teleop.ee_teleop import EETeleop, EETeleopConfig
            from vla_robot.teleop.inputs import JoyMapping, Twist6
            from vla_robot.teleop.kinematics import ArmKinematics

            self._Twist6 = Twist6
            self.ee = EETeleop(ArmKinematics(self.p.robot), EETeleopConfig(self.p.max_linear_m_s, self.p.max_angular_rad_s))
            self.joy_map = JoyMapping(deadman_button=self.p.deadman_button)
            self._twist = Twist6(np.zeros(3), np.zeros(3), 0.0)
            self._twist_lock = threading.Lock()
            self.create_subscription(JointState, "joint_states", self._on_state_ee, joint_qos(self.p.sensor_qos))
            if mode == "joy":
                self.create_subscription(Joy, "joy", self._on_joy, self._sensor_qos)
            elif mode == "twist":
                self.create_subscription(Twist, "cmd_twist", self._on_twist, COMMAND_QOS)
            else:
                threading.Thread(target=self._keyboard_loop, name="keyboard", daemon=True).start()
            self.create_timer(1.0 / self.p.rate_hz, self._ee_tick)

    def set_enabled(self, enabled: bool) -> None:
        """Switch the teleop on or off (the ``~/enable`` service, or an operator composed in this process)."""
        if enabled and not self.enabled and getattr(self, "driver", None) is not None:
            self.driver.started_at = None  # a free-running expert plans again from the present state
        self.enabled = bool(enabled)

    def _srv_enable(self, request, response):
        self.set_enabled(request.data)
        response.success, response.message = True, f"teleop {'enabled' if self.enabled else 'disabled'}"
        return response

    def _publish(self, targets: np.ndarray, stamp: float) -> None:
        self.cmd_pub.publish(trajectory_msg(self.names, targets, stamp))
        self.sent += 1

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _joint_positions_or_none(self, msg: JointState, what: str) -> np.ndarray | None:
        """Positions in this arm's joint order; a bad message is counted and logged (throttled), giving None."""
        try:
            return joint_positions_from_msg(msg, self.names)
        except MessageError as exc:
            self.rejected += 1
            self.get_logger().warning(f"{what} rejected: {exc}", throttle_duration_sec=1.0)
            return None

    # -- scripted ------------------------------------------------------------------------
    def _on_state_scripted(self, msg: JointState) -> None:
        if not self.enabled:
            return
        with self.twin_lock:
            action = self.expert.act()
            done = bool(self.expert.done)
        self._publish(action, from_time(msg.header.stamp))
        self.done_pub.publish(Bool(data=done))

    def _expert_tick(self) -> None:
        """Free-running scripted expert: the plan's targets for now, at ``rate_hz`` on the wall clock."""
        if not self.enabled:
            return
        step = self.driver.step()
        self._publish(step.targets, self._now())
        self.done_pub.publish(Bool(data=step.done))
        self.phase_pub.publish(String(data=json.dumps({"episode": step.episode, "seed": step.seed, "phase": step.phase,
                                                       "done": step.done, "elapsed_s": round(step.elapsed_s, 3)})))

    # -- leader-follower -----------------------------------------------------------------
    def _on_leader(self, msg: JointState) -> None:
        q = self._joint_positions_or_none(msg, "leader state")
        if q is not None and self.enabled:
            self._publish(self.leader.targets(q), self._now())

    # -- end-effector --------------------------------------------------------------------
    def _on_state_ee(self, msg: JointState) -> None:
        q = self._joint_positions_or_none(msg, "joint state")
        if q is None:
            return
        if self._joint_positions is None:
            self.ee.sync(q)
        self._joint_positions = q

    def _on_joy(self, msg: Joy) -> None:
        with self._twist_lock:
            self._twist = self.joy_map.twist(msg.axes, msg.buttons)

    def _on_twist(self, msg: Twist) -> None:
        lin = np.array([msg.linear.x, msg.linear.y, msg.linear.z])
        ang = np.array([msg.angular.x, msg.angular.y, msg.angular.z])
        if not (np.all(np.isfinite(lin)) and np.all(np.isfinite(ang))):
            self.rejected += 1
            self.get_logger().warning("twist with NaN/Inf rejected", throttle_duration_sec=1.0)
            return
        with self._twist_lock:
            self._twist = self._Twist6(lin, ang, 0.0)

    def _keyboard_loop(self) -> None:
        from vla_robot.teleop.inputs import keyboard_twist

        if not sys.stdin.isatty():
            self.get_logger().error("keyboard teleop needs a terminal (run the node in its own terminal)")
            return
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while rclpy_ok(self):
                key = sys.stdin.read(1)
                twist = keyboard_twist(key)
                if twist is not None:
                    with self._twist_lock:
                        self._twist = twist
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def _ee_tick(self) -> None:
        if self._joint_positions is None or not self.enabled:
            return
        with self._twist_lock:
            twist = self._twist
            if self.p.mode == "keyboard":  # one key press moves for one period
                self._twist = self._Twist6(np.zeros(3), np.zeros(3), 0.0)
        targets = self.ee.step(twist.linear, twist.angular, twist.gripper, 1.0 / self.p.rate_hz)
        self._publish(targets, self._now())


def rclpy_ok(node: Node) -> bool:
    return node.context.ok()


def main(args=None) -> None:
    spin_single(TeleopNode, args)
