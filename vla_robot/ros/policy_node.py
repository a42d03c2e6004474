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
  sub  /estop                     std_msgs/Bool            true = e-stop (`estop_topic`; a foot switch)
  pub  joint_command              sensor_msgs/JointState   targets for the arm node (spec joint order)
  pub  /diagnostics               diagnostic_msgs/DiagnosticArray (latency p50/p99, queue depth, safety events)
Services (std_srvs/Trigger): ~/start, ~/stop, ~/estop, ~/reset_estop.

Timing: the loop ticks on its own thread on a wall-clock schedule (``ControlThread``), so
inference never runs on the executor that serves joint states, images and the e-stop.
The control rate is the bundle's (``control_hz`` 0); another rate is refused unless
``control_hz_override`` says so, because a chunk's steps were learned at the bundle's rate.

Stop semantics: ``~/stop`` and ``~/estop`` latch. Autostart starts the policy once, when an
instruction and joint states are first there, and never again after a stop or e-stop;
only ``~/start`` resumes. ``~/estop`` is forwarded to the arm node (``arm_services``/estop),
which holds the arm itself even if this process dies; ``~/reset_estop`` releases both, and
moves nothing: ``~/start`` does (it starts the arm node first).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from vla_robot.cameras.interface import CameraIntrinsics, Frame
from vla_robot.policy.config import ChunkConfig, RuntimeConfig, SafetyConfig
from vla_robot.policy.control_thread import ControlThread
from vla_robot.policy.loop import ControlLoop
from vla_robot.policy.runtime_args import resolve_control_rate
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
    "control_hz": 0.0,  # 0 = the bundle's training rate; another value needs control_hz_override
    "control_hz_override": False,
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
    "execute_steps": 0,  # use at most this many steps of each chunk (0 = all)
    "max_obs_age": 0.5,
    "max_stall": 1.0,
    "velocity_scale": 1.0,
    "autostart": False,
    "diagnostics_hz": 1.0,
    "arm_services": "/arm",  # the arm node whose ~/start, ~/estop, ~/release_estop this node calls ("" = none)
    "estop_topic": "/estop",  # std_msgs/Bool, true = e-stop; "" = none
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

    def wait_for_state_after(self, wall_time: float, timeout: float) -> bool:
        """Wait until a joint state received after ``wall_time`` is there (False on timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if self._state is not None and self._received > wall_time:
                    return True
            time.sleep(0.005)
        return False

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

    @property
    def has_frame(self) -> bool:
        return self._frame is not None

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


def runtime_config(p, control_hz: float | None = None) -> RuntimeConfig:
    return RuntimeConfig(
        device=p.device, dtype=p.dtype, cuda_graph=p.cuda_graph, vlm_compile=p.vlm_compile,
        prompt_bucket=int(p.prompt_bucket),
        control_hz=float(control_hz or p.control_hz or 10.0), asynchronous=bool(p.asynchronous),
        chunk=ChunkConfig(merge=p.merge, decay=float(p.decay), request_threshold=float(p.request_threshold),
                          execute_steps=int(p.execute_steps) or None),
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
        rate = resolve_control_rate(getattr(policy, "control_hz", None), float(self.p.control_hz) or None,
                                    bool(self.p.control_hz_override), where="control_hz")
        self.runtime = runtime_config(self.p, rate)
        self.spec = get_robot_spec(ROBOT_ALIASES.get(self.p.robot, self.p.robot))
        self.arm = TopicArm(self, self.spec, "joint_states", "joint_command")
        self.cameras = {c: TopicCamera(self, c, f"{c}/image_raw") for c in policy.camera_names}
        self.loop = ControlLoop(self.arm, self.cameras, policy, self.runtime, pace=True, state_age=self.arm.state_age,
                                on_alert=self._alert, wall_period=self.runtime.period_s / float(self.p.rate_factor))
        self.control = ControlThread(self.loop, arm_start=self._start_arm, on_event=self._log_event)
        self.instruction = self.p.instruction
        self.episode: dict | None = None
        self._latched_stop = False  # set by stop/e-stop: autostart never undoes it, only ~/start
        self._pending_release = None  # the arm's answer to a forwarded release, awaited before a start
        self._autostarted = False
        self._lock = threading.RLock()
        self.create_subscription(String, "instruction", self._on_instruction, LATCHED_QOS)
        self.create_subscription(String, "policy/episode", self._on_episode, LATCHED_QOS)
        if self.p.estop_topic:
            self.create_subscription(Bool, self.p.estop_topic, self._on_estop_topic, COMMAND_QOS)
        self.create_service(Trigger, "~/start", self._srv_start)
        self.create_service(Trigger, "~/stop", self._srv_stop)
        self.create_service(Trigger, "~/estop", self._srv_estop)
        self.create_service(Trigger, "~/reset_estop", self._srv_reset_estop)
        base = self.p.arm_services.rstrip("/")
        self._arm_clients = {what: self.create_client(Trigger, f"{base}/{what}")
                             for what in ("start", "estop", "release_estop")} if base else {}
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / max(float(self.p.diagnostics_hz), 0.01), self._publish_diagnostics)
        if self.p.autostart:
            self._autostart_timer = self.create_timer(0.5, self._try_autostart)

    @property
    def running(self) -> bool:
        return self.control.running

    @property
    def ticks_while_running(self) -> int:
        return self.control.ticks

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

    def _log_event(self, level: str, text: str) -> None:
        if level == "error":
            self.get_logger().error(text, throttle_duration_sec=1.0)
        elif level == "warning":
            self.get_logger().warning(text, throttle_duration_sec=2.0)
        else:
            self.get_logger().info(text)

    # -- the arm node -----------------------------------------------------------------------
    def _send_to_arm(self, what: str, discovery_s: float = 0.0):
        """Send a request to the arm node's ~/<what>; returns a function that waits for the answer
        ``(ok, message)``, or None when there is no such service (not a vla-robot arm node).
        Executor callbacks pass ``discovery_s`` 0 and never wait: the answer is logged when it comes."""
        client = self._arm_clients.get(what)
        if client is None or not client.wait_for_service(timeout_sec=discovery_s):
            return None
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda f: self._arm_answered(what, f))
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())

        def answer(timeout: float = 5.0) -> tuple[bool, str]:
            if not done.wait(timeout):
                return False, f"{client.srv_name} did not answer in {timeout}s"
            reply = future.result()
            return bool(reply.success), reply.message

        return answer

    def _arm_answered(self, what: str, future) -> None:
        reply = future.result()
        text = f"arm {what}: {reply.message}"
        if reply.success:
            self.get_logger().info(text)
        else:
            self.get_logger().error(text)

    def _start_arm(self):
        """Runs on the control thread: the arm node must follow commands again before any is sent.
        A release forwarded by ~/reset_estop just before is answered first (two clients, no order)."""
        pending, self._pending_release = self._pending_release, None
        if pending is not None:
            pending(timeout=5.0)
        answer = self._send_to_arm("start", discovery_s=1.0)
        if answer is None:
            self.get_logger().warning("no arm start service: the arm is assumed to follow commands",
                                      throttle_duration_sec=10.0)
        asked = time.time()

        def started(timeout: float = 5.0) -> tuple[bool, str]:
            ok, message = answer(timeout) if answer is not None else (True, "no arm start service")
            # the first hold is the measured pose: measured after the start, not before a reset moved the arm
            fresh = self.arm.wait_for_state_after(asked, timeout=1.0)
            return ok, message if fresh else f"{message} (no fresh joint state yet)"

        return started

    # -- control --------------------------------------------------------------------------
    def start(self) -> tuple[bool, str]:
        """Check what can be checked here, then start on the control thread (arm start, episode, warm-up)."""
        with self._lock:
            if self.loop.safety.estopped:
                return False, "e-stop latched: call ~/reset_estop first"
            if not self.instruction:
                return False, "no instruction: publish on 'instruction' or set the parameter"
            if not self.arm.has_state:
                return False, "no joint state from the arm node yet"
            waiting = [name for name, cam in self.cameras.items() if not cam.has_frame]
            if waiting:
                return False, f"no image from camera(s) {waiting} yet"
            self._latched_stop = False
            self.control.request_start(self.instruction, self.episode)
            return True, f"starting: {self.instruction!r} (the arm node is started, then the policy warms up once)"

    def stop(self, why: str = "stopped") -> None:
        with self._lock:
            self._latched_stop = True
            self.control.stop(why)

    def _try_autostart(self) -> None:
        """Autostart runs the policy once: it retries until the policy has run (the episode context or
        a camera may come late), and never again after a stop or an e-stop, whatever the timer says."""
        if self._latched_stop or self.loop.safety.estopped or self.control.running:
            self._autostarted = self._autostarted or self.control.running
            self._autostart_timer.cancel()
            return
        if self.control.status == "starting":
            return
        ok, message = self.start()
        if ok:
            self.get_logger().info(f"autostart: {message}")

    def estop(self, source: str) -> str:
        """Latch, stop ticking, send the hold now, and forward to the arm node (which holds on its own)."""
        self.loop.safety.estop(source)
        self.stop("e-stop")
        if self.arm.has_state:  # a hold command at once, without waiting for a tick (no inference here)
            self.arm.send_joint_targets(self.loop.safety.filter(None, self.arm.read_state().positions).targets)
        forwarded = self._send_to_arm("estop")
        self.get_logger().error(f"E-STOP ({source}): policy stopped and latched; "
                                + ("forwarded to the arm node" if forwarded else "NO arm e-stop service reached"))
        return ("e-stop latched: policy stopped, holding; " +
                ("forwarded to the arm node" if forwarded else "the arm node's e-stop was not reachable"))

    def _on_estop_topic(self, msg: Bool) -> None:
        if msg.data:
            self.estop(f"topic {self.p.estop_topic}")

    def _srv_start(self, request, response):
        response.success, response.message = self.start()
        return response

    def _srv_stop(self, request, response):
        self.stop()
        response.success, response.message = True, "stopped and latched: autostart will not restart it; ~/start does"
        return response

    def _srv_estop(self, request, response):
        response.success, response.message = True, self.estop("service ~/estop")
        return response

    def _srv_reset_estop(self, request, response):
        self.loop.safety.reset_estop()
        forwarded = self._pending_release = self._send_to_arm("release_estop")
        response.success = True
        response.message = "e-stop released" + (" (and on the arm node)" if forwarded else "") + "; nothing moves until ~/start"
        return response

    # -- diagnostics ----------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        report = self.loop.report()
        values = {"running": self.running, "status": self.control.status, "queue_depth": report["queue_depth"],
                  "estopped": self.loop.safety.estopped, "control_hz": self.runtime.control_hz,
                  "velocity_scale": self.runtime.safety.velocity_scale, "tick_errors": self.control.tick_errors}
        for stage, s in report["latency_ms"].items():
            values[f"latency.{stage}.p50_ms"] = s["p50_ms"]
            values[f"latency.{stage}.p99_ms"] = s["p99_ms"]
        values["period_jitter_ms"] = report["period_jitter_ms"]
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
        self.diag_pub.publish(diagnostics.diagnostic_array(f"{self.get_fully_qualified_name().lstrip('/')}: policy", self.spec.name, level,
                                                           message, values, stamp))

    def close(self) -> None:
        self.control.close()
        self.loop.close()


def main(args=None) -> None:
    spin_single(PolicyNode, args)
