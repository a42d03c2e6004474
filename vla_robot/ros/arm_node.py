"""Arm node: JointState out (>= 50 Hz on hardware), joint targets in, torque and e-stop services.

Commands arrive as ``trajectory_msgs/JointTrajectory`` (final point) on ``joint_trajectory``
or as ``sensor_msgs/JointState`` on ``joint_command``. Every command goes through the
driver's ``JointLimitClamp``; malformed ones (unknown joints, NaN, wrong count) are
rejected, counted in diagnostics and logged, and never reach the arm.

Every command that reaches the arm is echoed, after the safety clamp, on ``~/applied_command``
(``sensor_msgs/JointState``). The recorder can record that instead of the teleop's request
(``action_source:=arm``): the action stored for a step is then the one the arm executed,
whatever the teleop's timing was.

With ``robot:=sim`` the node owns the twin's clock: every control tick it applies the
latest command for exactly one control period, publishes the command it applied stamped
with the state it was applied from, then the joint state stamped with the twin's new
time, and tells the twin cameras to render that same step.

The node guards the arm itself (``vla_robot.robots.guard.ArmGuard``, docs/deploy.md, "Safety"):
e-stop and stop hold the last commanded pose with torque on and latch until ``~/start``; no
command for ``cmd_timeout_s`` holds; a joint further than ``tracking_error_rad`` from its
command for ``tracking_error_s`` holds (latched, diagnostics ERROR); a servo reporting a
hardware fault holds (latched, ERROR). Services (``std_srvs``): ``~/estop``, ``~/release_estop``,
``~/stop``, ``~/start`` (Trigger), ``~/torque`` (SetBool; false goes to the sleep pose first).
The e-stop topic (``estop_topic``, ``std_msgs/Bool``, true = e-stop) is for a foot switch or button.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque

import mujoco
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory
from diagnostic_msgs.msg import DiagnosticArray

from vla_robot.robots.guard import ArmGuard, GuardConfig, Hold
from vla_robot.robots.limits import NonFiniteCommandError
from vla_robot.robots.sleep import SleepMove, fall_warning
from vla_robot.ros import diagnostics
from vla_robot.ros.conversions import MessageError, from_time, joint_positions_from_msg, joint_state_msg, targets_from_trajectory
from vla_robot.ros.executor import spin_single
from vla_robot.ros.params import declare
from vla_robot.ros.qos import joint_qos, sensor_qos, COMMAND_QOS, LATCHED_QOS, RECORD_COMMAND_QOS

PARAMS = {
    "sensor_qos": "sensor_data",  # sensor_data (best effort) | reliable (composed stacks)
    "robot": "sim",  # sim | widowx | so100
    "port": "",  # serial port (hardware); "virtual://" for a dry run on a virtual bus; "twin" / "twin://so100?name=x":
    # the real-time twin behind the real driver (docs/twin.md)
    "baudrate": 1_000_000,
    "calibration_path": "",  # SO-100 calibration JSON
    "publish_rate_hz": 50.0,  # JointState rate on hardware
    "control_rate_hz": 10.0,  # sim: control periods per second of sim time
    "rate_factor": 1.0,  # sim: sim seconds per wall second (2.0 runs twice as fast as real time)
    "lockstep": False,  # sim: while the teleop answers states, wait (<= lockstep_timeout_s) for its answer to the last one
    "lockstep_timeout_s": 0.5,
    "torque_on_start": True,  # false for a leader arm moved by hand
    "sim_robot": "widowx250",  # sim only: widowx250 | so100 arm model in the twin
    "task": "grinning_face",  # sim only
    "seed": 0,  # sim only: episode seeds are seed, seed+1, ...
    "cameras": "third_person,wrist",  # sim only
    "image_width": 128,  # sim only
    "image_height": 128,  # sim only
    "frame_prefix": "",
    "cmd_timeout_s": 0.5,  # no command for this long while following commands: hold
    "cmd_timeout_latch": False,  # true (deploy): a timed-out arm stays held until ~/start
    "tracking_error_rad": 0.6,  # an arm joint this far from its command (a servo's profile lags <= 0.49) ...
    "tracking_error_s": 0.5,  # ... for this long: latched hold, diagnostics ERROR
    "fault_poll_hz": 10.0,  # hardware: servo hardware-error registers read this often
    "estop_topic": "/estop",  # std_msgs/Bool, true = e-stop (a foot switch or button node); "" = none
    "twin_fault": "",  # port:=twin only: set to a JSON fault to inject it (sim.realtime.faults)
}


BUS_LOST_READS = 5  # consecutive failed state reads (50 ms at 100 Hz) that mean the bus, not a glitch


class ArmNode(Node):
    LOCKSTEP_LOOKBACK = 4  # states a lock-stepped teleop's latest answer may lag and still count as live

    def __init__(self, overrides: dict | None = None, robot=None, twin=None, twin_lock=None, name: str = "arm", context=None):
        super().__init__(name, context=context)
        self.p = declare(self, PARAMS, overrides)
        self._sensor_qos = sensor_qos(self.p.sensor_qos)
        self.twin = twin
        self.twin_lock = twin_lock or threading.RLock()
        self.robot = robot or self._make_robot()
        if not hasattr(self.robot, "last_targets"):
            # ~/applied_command echoes what the driver wrote after its clamp; a driver that cannot
            # say would have it echo the unclamped request under the same name
            raise TypeError(f"arm node: {type(self.robot).__name__} has no `last_targets` (the clamped goal it last "
                            "sent); the WidowX 250, SO-100 and twin drivers have it")
        self.spec = self.robot.spec
        self.names = list(self.spec.joint_names)
        self.rejected = 0
        self.refused = 0
        self.bus_errors = 0
        self.overruns = 0
        self.last_error = ""
        self.step_listeners: list = []  # sim: callables(stamp) run after each step (twin cameras)
        self.state_log: deque = deque(maxlen=20000)  # sim: (stamp, positions, qpos, episode seed) per step
        self.command_log: deque = deque(maxlen=20000)  # sim: (step stamp, command stamp, clamped targets) applied
        self._command: tuple[float, np.ndarray] | None = None
        self._gave_up_on: float | None = None  # stamp of the command a lock-step wait last timed out on
        self.lockstep_paused = False  # set by a composed operator while its teleop is off (see pause_lockstep)
        self._command_lock = threading.Lock()
        self._command_arrived = threading.Condition(self._command_lock)  # wakes a lock-step wait
        self._epoch = time.time()  # sim stamps: epoch + twin time, monotonic across resets
        self._seed = int(self.p.seed)
        self.guard = ArmGuard(self.spec, GuardConfig(float(self.p.cmd_timeout_s), bool(self.p.cmd_timeout_latch),
                                                     float(self.p.tracking_error_rad), float(self.p.tracking_error_s)))
        self._guard_lock = threading.RLock()  # guard decisions and the writes they imply, one at a time
        self._sleep: SleepMove | None = None
        self._ticks = 0
        self._read_failures = 0  # consecutive failed state reads
        self._ticks_seen = 0
        self.hold_written_at = 0.0  # wall time of the last hold written to the servos
        self.state_pub = self.create_publisher(JointState, "joint_states", joint_qos(self.p.sensor_qos))
        self.applied_pub = self.create_publisher(JointState, "~/applied_command", RECORD_COMMAND_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.instruction_pub = self.create_publisher(String, "instruction", LATCHED_QOS)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, COMMAND_QOS)
        self.create_subscription(JointState, "joint_command", self._on_joint_command, COMMAND_QOS)
        self.create_service(SetBool, "~/torque", self._srv_torque)
        # The e-stop has a callback group of its own (the node spins two executor threads): it never
        # waits for a joint-state read or a command write in progress to finish first.
        estop_group = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "~/estop", self._srv_estop, callback_group=estop_group)
        self.create_service(Trigger, "~/release_estop", self._srv_release)
        self.create_service(Trigger, "~/stop", self._srv_stop)
        self.create_service(Trigger, "~/start", self._srv_start)
        if self.p.estop_topic:
            self.create_subscription(Bool, self.p.estop_topic, self._on_estop_topic, COMMAND_QOS,
                                     callback_group=estop_group)
        self.robot.connect()
        self.guard.sent(self._present())
        self.twin_services = None
        if getattr(self.robot, "twin_host", None) is not None:  # port:=twin: reset, evaluate, faults
            from vla_robot.ros.twin_services import TwinServices

            self.twin_services = TwinServices(self, self.robot.twin_host)
        if self.is_sim:
            self.create_service(Trigger, "~/reset", self._srv_reset)
            self.create_service(Trigger, "~/evaluate", self._srv_evaluate)
            self._publish_instruction()
            self._stop = threading.Event()
            self._sim_thread = threading.Thread(target=self._sim_loop, name="twin-clock", daemon=True)
            self._sim_thread.start()
        else:
            if not self.p.torque_on_start and hasattr(self.robot, "set_torque"):
                self.robot.set_torque(False)
            self.create_timer(1.0 / self.p.publish_rate_hz, self._hw_tick)
        self.create_timer(1.0, self._publish_diagnostics)

    @property
    def is_sim(self) -> bool:
        return self.twin is not None

    def _make_robot(self):
        from vla_robot.robots.factory import is_twin_port, make_robot

        p = self.p
        kind = p.robot
        if kind == "sim" and is_twin_port(p.port):  # the real-time twin: its address names the arm
            from sim.realtime import parse_twin_url

            kind = parse_twin_url(p.port).driver_kind
        if kind == "sim":
            from sim import Twin, TwinConfig, TwinRobot

            cams = tuple(c for c in p.cameras.split(",") if c)
            self.twin = Twin(TwinConfig(robot=p.sim_robot, task=p.task, cameras=cams, seed=p.seed,
                                        image_size=(p.image_width, p.image_height), control_rate_hz=p.control_rate_hz))
            return TwinRobot(self.twin)
        params = {"port": p.port, "baudrate": p.baudrate}
        if kind == "so100" and p.calibration_path:
            params["calibration_path"] = p.calibration_path
        return make_robot(kind, **params)

    # -- commands ------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self._accept(lambda: targets_from_trajectory(msg, self.names), from_time(msg.header.stamp))

    def _on_joint_command(self, msg: JointState) -> None:
        self._accept(lambda: joint_positions_from_msg(msg, self.names), from_time(msg.header.stamp))

    def _accept(self, parse, stamp: float) -> None:
        try:
            targets = parse()
        except MessageError as exc:
            self.rejected += 1
            self.last_error = str(exc)
            self.get_logger().warning(f"command rejected: {exc}", throttle_duration_sec=1.0)
            return
        with self._guard_lock:
            if self._sleep is not None or not self.guard.admit():
                self.get_logger().warning(f"command ignored: {self.guard.report()['state']}; ~/start resumes",
                                          throttle_duration_sec=2.0)
                return
            if self.is_sim:
                with self._command_lock:
                    self._command = (stamp, targets)
                    self._command_arrived.notify_all()
                return
            self._send(targets)

    def _send(self, targets: np.ndarray) -> None:
        try:
            self.robot.send_joint_targets(targets)
        except (NonFiniteCommandError, ValueError, RuntimeError) as exc:
            self.refused += 1
            self.last_error = str(exc)
            self.get_logger().warning(f"command refused: {exc}", throttle_duration_sec=1.0)
            return
        self.guard.sent(self.robot.last_targets)
        self._publish_applied(self.robot.last_targets, self.get_clock().now().nanoseconds * 1e-9)

    # -- the guard's holds -------------------------------------------------------------------
    def _present(self) -> np.ndarray:
        """The pose a hold keeps when nothing was commanded yet: the last goal, else the measured pose."""
        if self.guard.last_sent is not None:
            return self.guard.last_sent.copy()
        last = self.robot.last_targets
        return np.array(last if last is not None else self.robot.read_state().positions, dtype=np.float64)

    def _write_hold(self, hold: Hold) -> None:
        if self.is_sim:
            with self._command_lock:
                self._command = (-1.0, hold.target)  # stamped as no state: a lock-step wait never waits on it
        elif hold.reason == "estop" and hasattr(self.robot, "estop"):
            self.robot.estop()  # the driver latches too, and writes the last commanded goal again
        elif not hasattr(self.robot, "hold"):
            self.robot.send_joint_targets(hold.target)
        else:
            self.robot.hold(hold.target if hold.reason == "tracking_error" else None)

    def _apply(self, hold: Hold) -> bool:
        """Write a hold now (the e-stop latency ends here): the twin holds it from its next step.

        A bus error is retried once; if the hold still cannot be written it is said loudly (the
        guard stays latched, commands stay refused) and False returned: only the hardware e-stop
        can stop an arm whose bus does not answer."""
        for attempt in (1, 2):
            try:
                self._write_hold(hold)
                break
            except Exception as exc:
                self.bus_errors += 1
                if attempt == 2:
                    self.last_error = f"HOLD ({hold.reason}) NOT WRITTEN to the servos: {exc}"
                    self.get_logger().error(self.last_error + "; use the hardware e-stop")
                    return False
        self.hold_written_at = time.time()
        if not self.is_sim:
            self.guard.sent(self.robot.last_targets)
            self._publish_applied(self.robot.last_targets, self.get_clock().now().nanoseconds * 1e-9)
        text = f"HOLD ({hold.reason}): {hold.message}" + ("; latched until ~/start" if hold.latched else "")
        if hold.level >= 2:  # rclpy refuses two severities from one call site
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)
        return True

    def rebase_guard(self) -> None:
        """The arm was put somewhere else (a twin reset): holds keep that pose from now on."""
        with self._guard_lock:
            self.guard.rebase(self._present())

    def _guard_tick(self, positions: np.ndarray) -> None:
        """After each state read: the torque-off move, the watchdog and tracking checks, servo faults."""
        self._ticks += 1
        every = max(1, int(round(float(self.p.publish_rate_hz) / max(float(self.p.fault_poll_hz), 0.1))))
        faults = None  # read from the bus outside the guard lock: an e-stop never waits for it
        if hasattr(self.robot, "read_hardware_errors") and self._ticks % every == 0:
            try:
                faults = self.robot.read_hardware_errors()
            except Exception as exc:  # counted; the next poll tries again
                self.bus_errors += 1
                self.last_error = f"hardware-error read failed: {exc}"
        with self._guard_lock:
            if self._sleep is not None:
                return self._sleep_tick(positions)
            hold = self.guard.check(positions)
            if hold is None and faults is not None:
                hold = self.guard.report_faults(faults, positions)
            if hold is not None:
                self._apply(hold)

    def estop(self, source: str) -> tuple[bool, str]:
        with self._guard_lock:
            self._sleep = None
            if not self._apply(self.guard.estop(self._present(), source)):
                return False, f"e-stop latched ({source}) but {self.last_error}: use the hardware e-stop"
            return True, (f"e-stop latched ({source}): holding the last commanded pose with torque on; "
                          f"~/release_estop then ~/start resumes [hold written at {self.hold_written_at:.6f}]")

    def _on_estop_topic(self, msg: Bool) -> None:
        if msg.data:
            self.estop(f"topic {self.p.estop_topic}")

    def _srv_stop(self, request, response):
        with self._guard_lock:
            self._sleep = None
            self._apply(self.guard.stop(self._present(), "~/stop"))
        response.success, response.message = True, "stopped: holding the last commanded pose; ~/start resumes"
        return response

    def _srv_start(self, request, response):
        with self._guard_lock:
            if self._sleep is not None:
                response.success, response.message = False, "moving to the sleep pose for torque off; wait for it"
                return response
            if self._read_failures:
                response.success, response.message = False, f"the servo bus is not answering: {self.last_error}"
                return response
            response.success, response.message = self.guard.start()
        self.get_logger().info(f"start: {response.message}")
        return response

    # -- torque off, the explicit way ------------------------------------------------------------
    def _torque_off(self) -> tuple[bool, str]:
        if self.guard.estopped:
            return False, "e-stop is latched: release it before switching torque off (the arm goes to its sleep pose first)"
        state = self.robot.read_state()
        with self._guard_lock:
            self._apply(self.guard.stop(state.positions, "torque off requested"))
            self._sleep = SleepMove(self.spec, self._present())
        return True, "moving to the sleep pose; torque goes off once it is there (watch the log / diagnostics)"

    def _sleep_tick(self, positions: np.ndarray) -> None:
        move = self._sleep
        if move.arrived(positions):
            warning = fall_warning(self.spec, positions)
            self.last_error = f"torque off at the sleep pose. {warning}".strip()
            self.robot.set_torque(False)
            self._sleep = None
            self.get_logger().warning(self.last_error)
        elif move.timed_out:
            self._sleep = None
            self.last_error = "torque off abandoned: the sleep pose was not reached (blocked?); torque stays on, holding"
            self.get_logger().error(self.last_error)
        else:
            self.robot.send_joint_targets(move.step(positions))
            self.guard.sent(self.robot.last_targets)

    def _publish_applied(self, targets: np.ndarray, stamp: float) -> None:
        self.applied_pub.publish(joint_state_msg(self.names, targets, None, stamp))

    # -- state ---------------------------------------------------------------------------
    def stamp_of(self, sim_time: float) -> float:
        return self._epoch + sim_time

    def _hw_tick(self) -> None:
        self._ticks_seen += 1
        if self._read_failures >= BUS_LOST_READS and self._ticks_seen % 25:
            return  # a silent bus: each failed read waits out the SDK's timeout; retry a few times a second
        try:
            state = self.robot.read_state()
        except Exception as exc:  # a bus glitch must not stop the node; a bus that stays silent holds
            self.bus_errors += 1
            self._read_failures += 1
            self.last_error = str(exc)
            self.get_logger().warning(f"read failed: {exc}", throttle_duration_sec=1.0)
            if self._read_failures == BUS_LOST_READS:
                with self._guard_lock:
                    hold = self.guard.bus_lost(f"{BUS_LOST_READS} reads in a row failed ({exc}): a servo unplugged "
                                               "or unpowered?")
                    if hold is not None:
                        self._apply(hold)
            return
        self._read_failures = 0
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.state_pub.publish(joint_state_msg(self.names, state.positions, state.velocities, stamp))
        if getattr(self.robot, "torque_enabled", True):
            self._guard_tick(state.positions)

    def _sim_loop(self) -> None:
        """The twin's clock. One thread steps and renders, because an EGL context belongs to
        the thread that made it current (executor threads would take turns and fail)."""
        period = 1.0 / (self.p.control_rate_hz * self.p.rate_factor)
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    self._sim_tick()
                except Exception as exc:  # keep the clock running; report
                    self.bus_errors += 1
                    self.last_error = f"sim step failed: {exc}"
                    self.get_logger().error(self.last_error, throttle_duration_sec=1.0)
                next_tick += period
                delay = next_tick - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_tick = time.monotonic()  # overrun: do not try to catch up in a burst
                    self.overruns += 1
        finally:
            with self.twin_lock:
                self.twin.close()  # renderers die in the thread that owns their GL context

    def _await_command(self) -> None:
        """Lock-step over DDS: while the teleop is answering states (its latest command answers one
        of the last few), wait for its answer to the newest state, so each step gets its own command.

        Looking a few states back, not just one, lets a teleop that missed one deadline catch up
        on the next tick instead of staying a step behind for the rest of the episode. A command
        that already ran out one wait is not waited on again: the teleop has gone quiet (switched
        off between episodes), and each further wait would stall the twin for nothing.
        """
        with self._command_lock:
            command = self._command
        n = len(self.state_log)
        if self.lockstep_paused or command is None or n == 0 or command[0] == self._gave_up_on:
            return
        recent = [self.state_log[-k][0] for k in range(1, min(n, self.LOCKSTEP_LOOKBACK) + 1)]
        if not any(abs(command[0] - t) < 1e-6 for t in recent):
            return  # nobody answers states in lock-step (a leader arm, a joystick, or the teleop is off)
        latest = recent[0]
        deadline = time.monotonic() + self.p.lockstep_timeout_s
        with self._command_arrived:  # sleeps until the command callback notifies: no polling for the GIL
            while not (self._command is not None and abs(self._command[0] - latest) < 1e-6):
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.lockstep_paused:
                    self._gave_up_on = self._command[0] if self._command is not None else None
                    return
                self._command_arrived.wait(min(left, 0.1))

    def pause_lockstep(self, paused: bool) -> None:
        """For an operator composed in this process that switches its teleop off and on: while
        paused, no tick waits for a command. Otherwise the first tick after the switch-off waits
        out ``lockstep_timeout_s`` for an answer that never comes: 0.5 s per episode, a third of
        the demo's collection time (profiled: 0.51 s of 1.54 s per episode)."""
        with self._command_arrived:
            self.lockstep_paused = paused
            self._command_arrived.notify_all()

    def _sim_tick(self) -> None:
        if self.p.lockstep:
            self._await_command()
        with self.twin_lock:
            # Read the command under the twin lock: read before it, a reset could slip in between and
            # the previous episode's last command would drive the freshly reset arm back to where that
            # episode ended, and it held there (91 of 600 demo episodes started away from home).
            with self._command_lock:
                command = self._command
            step_stamp = self.stamp_of(self.twin.sim_time)
            if command is not None:
                try:
                    self.robot.send_joint_targets(command[1])
                    applied = self.robot.last_targets
                    self.guard.sent(applied)
                    self.command_log.append((step_stamp, command[0], applied))
                    self._publish_applied(applied, step_stamp)
                except (NonFiniteCommandError, ValueError) as exc:
                    self.refused += 1
                    self.last_error = str(exc)
                    self.robot.hold()
            else:
                self.robot.hold()
            mujoco.mj_kinematics(self.twin.model, self.twin.data)  # after mj_step, poses lag qpos by a substep:
            mujoco.mj_camlight(self.twin.model, self.twin.data)  # refresh them so renders show this very step
            state = self.robot.read_state()
            stamp = self.stamp_of(state.stamp)
            self.state_log.append((stamp, state.positions.copy(), self.twin.data.qpos.copy(), self._seed))
            self.state_pub.publish(joint_state_msg(self.names, state.positions, state.velocities, stamp))
            for listener in self.step_listeners:
                listener(stamp)
        self._guard_tick(state.positions)

    # -- services ------------------------------------------------------------------------
    def _srv_torque(self, request, response):
        """true: torque on, holding the present pose. false: to the sleep pose first, then torque off."""
        if not hasattr(self.robot, "set_torque"):
            response.success, response.message = False, "the lock-stepped twin has no torque to switch"
            return response
        try:
            if request.data:
                with self._guard_lock:
                    self._sleep = None
                    self.robot.set_torque(True)
                    self.guard.sent(self._present())
                response.success, response.message = True, "torque on, holding the present pose"
            else:
                response.success, response.message = self._torque_off()
        except Exception as exc:
            response.success, response.message = False, str(exc)
        return response

    def _srv_estop(self, request, response):
        response.success, response.message = self.estop("service ~/estop")
        return response

    def _srv_release(self, request, response):
        with self._guard_lock:
            message = self.guard.release_estop()
            if hasattr(self.robot, "release_estop"):
                self.robot.release_estop()
        response.success, response.message = True, message
        return response

    def reset_twin(self) -> dict:
        with self.twin_lock:
            self._epoch = self.stamp_of(self.twin.sim_time) + 1.0  # a visible gap between episodes
            self._seed += 1
            info = self.twin.reset(self._seed)
            self.robot.connect()
            with self._guard_lock:
                self.guard.rebase(self.robot.last_targets)  # a later hold keeps the new episode's pose
                with self._command_lock:
                    self._command = None if self.guard.hold is None else (-1.0, self.robot.last_targets)
        self._publish_instruction()
        return info

    def _srv_reset(self, request, response):
        info = self.reset_twin()
        response.success, response.message = True, json.dumps({"seed": self._seed, "instruction": info["instruction"]})
        return response

    def _srv_evaluate(self, request, response):
        with self.twin_lock:
            result = self.twin.evaluate()
        response.success, response.message = bool(result["success"]), json.dumps(result, default=str)
        return response

    def _publish_instruction(self) -> None:
        self.instruction_pub.publish(String(data=self.twin.episode.instruction))

    def _publish_diagnostics(self) -> None:
        clamp = getattr(self.robot, "clamp", None)
        values = {
            "robot": self.spec.name,
            "commands_rejected": self.rejected,
            "commands_refused": self.refused,
            "position_clamps": getattr(clamp, "position_clamps", 0),
            "velocity_clamps": getattr(clamp, "velocity_clamps", 0),
            "bus_errors": self.bus_errors,
            "estopped": self.guard.estopped,
            "sim_overruns": self.overruns,
            "last_error": self.last_error,
            "hold_written_at": f"{self.hold_written_at:.6f}",  # wall clock, full precision (floats get 6 digits)
            "torque_off_pending": self._sleep is not None,
            "guard": self.guard.report(),
        }
        level = diagnostics.WARN if (self.rejected or self.refused or self.bus_errors) else diagnostics.OK
        level = max(level, self.guard.level)
        hold = self.guard.hold
        message = hold.message if hold is not None and hold.level >= level else (self.last_error or "ok")
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.diag_pub.publish(diagnostics.diagnostic_array(f"{self.get_fully_qualified_name().lstrip('/')}: arm", self.spec.name, level,
                                                           message, values, stamp))

    def close(self) -> None:
        if self.is_sim:
            self._stop.set()
            self._sim_thread.join(timeout=5.0)
        try:
            self.robot.close()
        except Exception:
            pass
        if self.twin_services is not None:
            self.twin_services.close()


def main(args=None) -> None:
    spin_single(ArmNode, args, threads=2)
