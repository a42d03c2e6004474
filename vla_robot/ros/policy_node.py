"""ROS 2 policy node: cameras + joint states + instruction in, joint targets out at the control rate.

A thin shell around ``vla_robot.policy.loop.ControlLoop``: the arm and the cameras are
seen through proxies that implement the project's ``Robot`` and ``Camera`` interfaces
on top of subscriptions, so the loop, the scheduler and the safety layer are exactly the
ones evaluation and ``vla-robot deploy`` use.

Topics (relative names; remap or namespace as usual):
  sub  joint_states               sensor_msgs/JointState   (the arm node's state)
  sub  <camera>/image_raw         sensor_msgs/Image        (one per policy camera, rgb8)
  sub  instruction                std_msgs/String          (also the `instruction` parameter)
  sub  policy/episode             std_msgs/String (JSON)   evaluation context (expert replay only)
  pub  joint_command              sensor_msgs/JointState   targets for the arm node (spec joint order)
  pub  /diagnostics               diagnostic_msgs/DiagnosticArray (latency p50/p99, queue depth, safety events)
Services (std_srvs/Trigger): ~/start, ~/stop, ~/estop, ~/reset_estop.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_robot.cameras.interface import CameraIntrinsics, Frame
from vla_robot.policy.config import ChunkConfig, RuntimeConfig, SafetyConfig
from vla_robot.policy.loop import ControlLoop
from vla_robot.robots.interface import RobotState
from vla_robot.robots.specs import RobotSpec, get_robot_spec
from vla_robot.ros import diagnostics
from vla_robot.ros.conversions import MessageError, from_time, image_from_msg, joint_positions_from_msg, joint_state_msg
from vla_robot.ros.executor import spin_single
from vla_robot.ros.params import declare
from vla_robot.ros.qos import COMMAND_QOS, LATCHED_QOS, SENSOR_QOS

PARAMS = {
    "policy": "",  # bundle directory
    "robot": "widowx250",  # widowx250 | so100 (the twin is a widowx250 unless told otherwise)
    "instruction": "",  # also settable on the `instruction` topic
    "control_hz": 10.0,
    "rate_factor": 1.0,  # sim only: wall-clock speed-up, must equal the arm node's
    "asynchronous": True,
    "device": "cpu",
    "dtype": "float32",
    "cuda_graph": "auto",
    "vlm_compile": "off",  # off | default | reduce-overhead
    "prompt_bucket": 0,
    "merge": "latest",
    "decay": 0.1,
    "request_threshold": 0.5,
    "max_obs_age": 0.5,
    "max_stall": 1.0,
    "velocity_scale": 1.0,
    "autostart": False,
    "diagnostics_hz": 1.0,
}


class TopicArm:
    """``Robot`` over topics: state from the arm node's JointState, targets published to it."""

    def __init__(self, node: Node, spec: RobotSpec, state_topic: str, command_topic: str) -> None:
        self.spec = spec
        self.node = node
        self._lock = threading.Lock()
        self._state: RobotState | None = None
        self._received = 0.0
        self.rejected = 0
        self.states_received = 0
        self._pub = node.create_publisher(JointState, command_topic, COMMAND_QOS)
        node.create_subscription(JointState, state_topic, self._on_state, SENSOR_QOS)

    def _on_state(self, msg: JointState) -> None:
        try:
            pos = joint_positions_from_msg(msg, self.spec.joint_names)
        except MessageError as exc:
            self.rejected += 1
            self.node.get_logger().warning(f"joint state rejected: {exc}", throttle_duration_sec=2.0)
            return
        vel = np.zeros(self.spec.dof)
        if len(msg.velocity) == len(msg.name):
            lookup = dict(zip(msg.name, msg.velocity))
            vel = np.array([lookup[n] for n in self.spec.joint_names], dtype=np.float64)
        with self._lock:
            self._state = RobotState(pos, vel, from_time(msg.header.stamp))
            self._received = time.time()
            self.states_received += 1

    @property
    def has_state(self) -> bool:
        return self._state is not None

    def state_age(self) -> float:
        return time.time() - self._received if self._state is not None else float("inf")

    def connect(self) -> None:
        pass

    def read_state(self) -> RobotState:
        with self._lock:
            if self._state is None:
                raise TimeoutError(f"no {self.spec.name} joint state received yet")
            return self._state

    def send_joint_targets(self, targets: np.ndarray) -> None:
        stamp = self.node.get_clock().now().nanoseconds * 1e-9
        self._pub.publish(joint_state_msg(self.spec.joint_names, targets, None, stamp))

    def close(self) -> None:
        pass


class TopicCamera:
    """``Camera`` over an Image topic: ``read`` returns the newest frame (its age is checked by safety)."""

    def __init__(self, node: Node, name: str, topic: str) -> None:
        self.name = name
        self.intrinsics = CameraIntrinsics(0, 0, 0.0, 0.0, 0.0, 0.0)
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._index = 0
        self.rejected = 0
        self._node = node
        node.create_subscription(Image, topic, self._on_image, SENSOR_QOS)

    def _on_image(self, msg: Image) -> None:
        try:
            color = image_from_msg(msg)
        except MessageError as exc:
            self.rejected += 1
            self._node.get_logger().warning(f"camera {self.name!r}: image rejected: {exc}", throttle_duration_sec=2.0)
            return
        with self._lock:
            self._frame = Frame(color=color, stamp=from_time(msg.header.stamp), receive_stamp=time.time(),
                                index=self._index)
            self._index += 1

    def connect(self) -> None:
        pass

    def read(self, timeout: float = 1.0) -> Frame:
        deadline = time.time() + timeout
        while True:
            with self._lock:
                if self._frame is not None:
                    return self._frame
            if time.time() > deadline:
                raise TimeoutError(f"no image on camera {self.name!r}")
            time.sleep(0.005)

    def close(self) -> None:
        pass


# the arm node's robot names -> spec names (the twin is a WidowX 250)
ROBOT_ALIASES = {"sim": "widowx250", "widowx": "widowx250"}


def runtime_config(p) -> RuntimeConfig:
    return RuntimeConfig(
        device=p.device, dtype=p.dtype, cuda_graph=p.cuda_graph, vlm_compile=p.vlm_compile,
        prompt_bucket=int(p.prompt_bucket),
        control_hz=float(p.control_hz), asynchronous=bool(p.asynchronous),
        chunk=ChunkConfig(merge=p.merge, decay=float(p.decay), request_threshold=float(p.request_threshold)),
        safety=SafetyConfig(max_obs_age_s=float(p.max_obs_age), max_inference_stall_s=float(p.max_stall),
                            velocity_scale=float(p.velocity_scale)),
    )


class PolicyNode(Node):
    def __init__(self, overrides: dict | None = None, policy=None, name: str = "policy", context=None) -> None:
        super().__init__(name, context=context)
        self.p = declare(self, PARAMS, overrides)
        self.runtime = runtime_config(self.p)
        if policy is None:
            if not self.p.policy:
                raise ValueError("parameter 'policy' (a bundle directory) is required")
            from vla_robot.policy.loading import load_policy

            policy = load_policy(self.p.policy, self.runtime)
        self.policy = policy
        self.spec = get_robot_spec(ROBOT_ALIASES.get(self.p.robot, self.p.robot))
        self.arm = TopicArm(self, self.spec, "joint_states", "joint_command")
        self.cameras = {c: TopicCamera(self, c, f"{c}/image_raw") for c in policy.camera_names}
        self.loop = ControlLoop(self.arm, self.cameras, policy, self.runtime, pace=False, state_age=self.arm.state_age,
                                on_alert=self._alert, wall_period=self.runtime.period_s / float(self.p.rate_factor))
        self.instruction = self.p.instruction
        self.episode: dict | None = None
        self.running = False
        self.ticks_while_running = 0
        self._warm = False
        self._lock = threading.RLock()
        self.create_subscription(String, "instruction", self._on_instruction, LATCHED_QOS)
        self.create_subscription(String, "policy/episode", self._on_episode, LATCHED_QOS)
        self.create_service(Trigger, "~/start", self._srv_start)
        self.create_service(Trigger, "~/stop", self._srv_stop)
        self.create_service(Trigger, "~/estop", self._srv_estop)
        self.create_service(Trigger, "~/reset_estop", self._srv_reset_estop)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.runtime.period_s / float(self.p.rate_factor), self._on_tick)
        self.create_timer(1.0 / max(float(self.p.diagnostics_hz), 0.01), self._publish_diagnostics)
        if self.p.autostart:
            self.create_timer(0.5, self._try_autostart)

    # -- inputs -------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data

    def _on_episode(self, msg: String) -> None:
        try:
            self.episode = json.loads(msg.data)
        except json.JSONDecodeError as exc:
            self.get_logger().error(f"policy/episode is not JSON: {exc}")

    def _alert(self, name: str, message: str) -> None:
        self.get_logger().warning(f"safety {name}: {message}", throttle_duration_sec=1.0)

    # -- control --------------------------------------------------------------------------
    def start(self) -> tuple[bool, str]:
        with self._lock:
            if not self.instruction:
                return False, "no instruction: publish on 'instruction' or set the parameter"
            if not self.arm.has_state:
                return False, "no joint state from the arm node yet"
            try:
                self.loop.start_episode(self.instruction, self.episode)
                if not self._warm:
                    seconds = self.loop.warmup()
                    self._warm = True
                    self.get_logger().info(f"policy warmed up in {seconds:.2f}s")
            except Exception as exc:  # a policy that cannot start must say why, not crash the node
                return False, f"policy failed to start: {exc}"
            self.loop.running = True
            self.running = True
            self.ticks_while_running = 0
            return True, f"running: {self.instruction!r}"

    def stop(self) -> None:
        with self._lock:
            self.running = False
            self.loop.running = False

    def _try_autostart(self) -> None:
        if not self.running and not self.loop.safety.estopped:
            ok, message = self.start()
            if ok:
                self.get_logger().info(message)

    def _on_tick(self) -> None:
        with self._lock:
            if not self.running:
                return
            try:
                self.loop.tick()
                self.ticks_while_running += 1
            except TimeoutError as exc:
                self.get_logger().warning(str(exc), throttle_duration_sec=2.0)

    def _srv_start(self, request, response):
        response.success, response.message = self.start()
        return response

    def _srv_stop(self, request, response):
        self.stop()
        response.success, response.message = True, "stopped"
        return response

    def _srv_estop(self, request, response):
        self.loop.safety.estop("service call")
        with self._lock:
            if self.running:
                self.loop.tick()  # send the hold command now, not at the next period
        self.get_logger().error("E-STOP: holding position")
        response.success, response.message = True, "e-stop latched: holding position"
        return response

    def _srv_reset_estop(self, request, response):
        self.loop.safety.reset_estop()
        response.success, response.message = True, "e-stop released"
        return response

    # -- diagnostics ----------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        report = self.loop.report()
        values = {"running": self.running, "queue_depth": report["queue_depth"], "estopped": self.loop.safety.estopped}
        for stage, s in report["latency_ms"].items():
            values[f"latency.{stage}.p50_ms"] = s["p50_ms"]
            values[f"latency.{stage}.p99_ms"] = s["p99_ms"]
        values["safety"] = report["safety"]
        values["loop"] = report["loop"]
        values["scheduler"] = report["scheduler"]
        values["rejected_joint_states"] = self.arm.rejected
        values["rejected_images"] = sum(c.rejected for c in self.cameras.values())
        return values

    def _publish_diagnostics(self) -> None:
        values = self.diagnostic_values()
        if self.loop.safety.estopped:
            level, message = diagnostics.ERROR, "e-stop latched"
        elif values["safety"]["non_finite_action"] or values["safety"]["stale_observation"] or values["safety"]["inference_stall"]:
            level, message = diagnostics.WARN, "safety holds occurred"
        else:
            level, message = diagnostics.OK, "running" if self.running else "idle"
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.diag_pub.publish(diagnostics.diagnostic_array(f"{self.get_name()}: policy", self.spec.name, level,
                                                           message, values, stamp))

    def close(self) -> None:
        self.stop()
        self.loop.close()


def main(args=None) -> None:
    spin_single(PolicyNode, args)
