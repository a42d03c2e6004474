"""Recorder node: cameras + joint states + commanded actions -> Zarr episodes.

The action stream is, by ``action_source``: ``teleop``, what the teleop asked for
(``joint_trajectory`` / ``joint_command``), or ``arm``, what the arm node executed after its
safety clamp (``arm/applied_command``, remappable). Prefer ``arm`` where the arm node runs
with the recorder: a late or clamped request is then recorded as what the arm really did.

Services: ``~/start`` (Trigger), ``~/save`` (SetBool: data = success), ``~/discard``
(Trigger). The instruction comes from the ``instruction`` topic (std_msgs/String, latched;
the twin publishes each episode's) or the ``instruction`` parameter
(``ros2 param set /recorder instruction "..."``). ``/diagnostics`` reports queue depth,
lag, gaps, drops and rejected messages; ``~/status`` carries the same as JSON.
"""

from __future__ import annotations

import json
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_robot.robots.specs import get_robot_spec
from vla_robot.ros import diagnostics
from vla_robot.ros.conversions import (MessageError, depth_from_msg, from_time, image_from_msg,
                                       joint_positions_from_msg, targets_from_trajectory)
from vla_robot.ros.executor import spin_single
from vla_robot.ros.params import declare
from vla_robot.ros.qos import LATCHED_QOS, RECORD_COMMAND_QOS, joint_qos, sensor_qos

PARAMS = {
    "sensor_qos": "sensor_data",  # sensor_data (best effort) | reliable (composed stacks)
    "store": "demos.zarr",  # local path or fsspec URL; appended to when it exists
    "robot": "widowx250",  # widowx250 | so100 (joint names and store schema)
    "cameras": "third_person,wrist",  # topics <name>/image_raw
    "depth_cameras": "",  # cameras whose <name>/depth/image_raw (16UC1, aligned) is recorded too
    "width": 128,  # expected image size of every camera
    "height": 128,
    "control_rate_hz": 10.0,
    "action_source": "teleop",  # teleop: joint_trajectory + joint_command | arm: arm/applied_command
    "tolerance_s": 0.0,  # 0: 40% of a control period
    "max_wait_s": 0.5,
    "encoding": "jpeg",  # jpeg | jpegxl | png (lossless)
    "quality": 90,
    "operator": "",
    "instruction": "",
    "auto_reset_service": "",  # e.g. /arm/reset: the twin resets after every save/discard
    "preview_path": "",  # write a JPEG mosaic here (headless preview)
    "preview_period_s": 1.0,
    "preview_window": False,  # an OpenCV window (needs a display and GUI OpenCV)
    "console": False,  # keyboard console in this terminal
    "stale_after_s": 1.0,
    "queue_size": 64,
    # JSON: the scene the episodes come from (the twin's cards, layout, split, image size; or a lab's
    # description), kept in the store's schema (extra["scene"]) so a policy trained on the store
    # can be deployed and evaluated on the same scene. "" records none.
    "scene": "",
}


class RecorderNode(Node):
    def __init__(self, overrides: dict | None = None, name: str = "recorder", context=None):
        super().__init__(name, context=context)
        self.p = declare(self, PARAMS, overrides)
        self._sensor_qos = sensor_qos(self.p.sensor_qos)
        self.spec = get_robot_spec(self.p.robot)
        self.names = list(self.spec.joint_names)
        self.camera_names = tuple(c for c in self.p.cameras.split(",") if c)
        self.depth_cameras = tuple(c for c in self.p.depth_cameras.split(",") if c)
        self.expected_hw = (self.p.height, self.p.width)
        try:
            self.scene = json.loads(self.p.scene) if self.p.scene else None
        except json.JSONDecodeError as exc:
            raise ValueError(f"recorder parameter scene={self.p.scene!r} is not JSON: {exc}") from None
        if self.scene is not None and not isinstance(self.scene, dict):
            raise ValueError(f"recorder parameter scene must be a JSON object, got {self.p.scene!r}")
        self.intrinsics: dict[str, dict] = {}
        self.last_frame: dict[str, float] = {c: 0.0 for c in self.camera_names}
        self.latest_images: dict = {}
        self.stale_events = {c: 0 for c in self.camera_names}
        self._stale = {c: False for c in self.camera_names}
        self.recorder = None
        self.last_state_stamp = 0.0  # newest joint-state stamp taken in while recording
        self.seen: dict[str, float] = {}  # stream -> newest stamp taken in, recording or not (received_through)
        self._store = None
        self._pending_instruction = self.p.instruction
        from vla_robot.recorder.preview import Preview

        self.preview = Preview(self.p.preview_path, self.p.preview_period_s, self.p.preview_window or None) \
            if (self.p.preview_path or self.p.preview_window) else None
        # One exclusive group per stream: streams run in parallel, but a stream's own messages are
        # handled in arrival order (two threads on one stream would reorder, and reordered
        # samples are dropped as out of order).
        state_group, action_group = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, "joint_states", self._on_state, joint_qos(self.p.sensor_qos), callback_group=state_group)
        if self.p.action_source == "teleop":
            self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, RECORD_COMMAND_QOS,
                                     callback_group=action_group)
            self.create_subscription(JointState, "joint_command", self._on_joint_command, RECORD_COMMAND_QOS,
                                     callback_group=action_group)
        elif self.p.action_source == "arm":
            self.create_subscription(JointState, "arm/applied_command", self._on_joint_command, RECORD_COMMAND_QOS,
                                     callback_group=action_group)
        else:
            raise ValueError(f"recorder: action_source {self.p.action_source!r} unknown; use 'teleop' or 'arm'")
        for cam in self.camera_names:
            group = MutuallyExclusiveCallbackGroup()
            self.create_subscription(Image, f"{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), self._sensor_qos,
                                     callback_group=group)
            self.create_subscription(CameraInfo, f"{cam}/camera_info", lambda m, c=cam: self._on_info(c, m),
                                     self._sensor_qos, callback_group=group)
            if cam in self.depth_cameras:
                self.create_subscription(Image, f"{cam}/depth/image_raw", lambda m, c=cam: self._on_depth(c, m),
                                         self._sensor_qos, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_subscription(String, "instruction", self._on_instruction, LATCHED_QOS, callback_group=control)
        self.create_service(Trigger, "~/start", self._srv_start, callback_group=control)
        self.create_service(SetBool, "~/save", self._srv_save, callback_group=control)
        self.create_service(Trigger, "~/discard", self._srv_discard, callback_group=control)
        self.add_on_set_parameters_callback(self._on_params)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.reset_client = self.create_client(Trigger, self.p.auto_reset_service) if self.p.auto_reset_service else None
        self.create_timer(0.05, self._tick, callback_group=control)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=control)
        self.console = None
        if self.p.console:
            from vla_robot.recorder.console import OperatorConsole

            self.console = OperatorConsole(self.console_action)
            if self.console.start():
                self.create_timer(0.5, lambda: self.console.show(self.status()), callback_group=control)

    # -- store ---------------------------------------------------------------------------
    def _ensure_recorder(self):
        if self.recorder is not None:
            return self.recorder
        from vla_robot.data import CameraSpec, EpisodeStore, StoreError, StoreSchema
        from vla_robot.recorder.session import EpisodeRecorder

        url = self.p.store
        scene = self.scene
        try:
            store = EpisodeStore.open(url, mode="a")
            have = store.schema.camera_names
            if tuple(have) != self.camera_names or store.schema.robot != self.spec.name:
                raise ValueError(f"store {url} holds robot {store.schema.robot} cameras {list(have)}; this recorder "
                                 f"records {self.spec.name} {list(self.camera_names)} (use another store)")
            recorded = store.schema.extra.get("scene")
            if scene and recorded is not None and recorded != scene:
                raise ValueError(f"store {url} was recorded in scene {json.dumps(recorded, sort_keys=True)}; this "
                                 f"recorder records {json.dumps(scene, sort_keys=True)} (use another store: a policy "
                                 "trained on one store is deployed on one scene)")
        except StoreError as exc:
            if "no episode store" not in str(exc):
                raise
            schema = StoreSchema(
                robot=self.spec.name, joint_names=self.spec.joint_names, control_rate_hz=self.p.control_rate_hz,
                action_space={"type": "joint_position", "names": self.names},
                cameras=[CameraSpec(c, self.p.width, self.p.height, self.intrinsics.get(c), encoding=self.p.encoding,
                                    quality=self.p.quality, depth=c in self.depth_cameras)
                         for c in self.camera_names],
                state_dim=self.spec.dof, action_dim=self.spec.dof, extra={"scene": scene} if scene else {},
            )
            store = EpisodeStore.create(url, schema)
        self._store = store
        self.recorder = EpisodeRecorder(store, self.camera_names, self.p.control_rate_hz,
                                        tolerance_s=self.p.tolerance_s or None, max_wait_s=self.p.max_wait_s,
                                        queue_size=self.p.queue_size, depth_cameras=self.depth_cameras,
                                        operator=self.p.operator, robot=self.spec.name)
        if self._pending_instruction:
            self.recorder.set_instruction(self._pending_instruction)
        return self.recorder

    # -- inputs --------------------------------------------------------------------------
    def received_through(self, stamp: float, streams: tuple[str, ...] | None = None) -> bool:
        """True once every stream (default: state, action, each camera) has taken in a message
        stamped at or after ``stamp``. Each stream is handled in arrival order, so everything
        published before ``stamp`` has then been handled: an operator that saves only after this
        records the whole episode, and one that starts only after the new episode's first state
        records nothing of the previous one. (Without this, on a loaded CPU 91 of 600 demo
        episodes began with the previous episode's last frames and 68 lost their ends.)"""
        streams = streams or ("state", "action", *(f"images/{c}" for c in self.camera_names))
        return all(self.seen.get(name, float("-inf")) >= stamp - 1e-6 for name in streams)

    def _saw(self, stream: str, stamp: float) -> None:
        if stamp > self.seen.get(stream, float("-inf")):
            self.seen[stream] = stamp

    def _on_state(self, msg: JointState) -> None:
        self._saw("state", from_time(msg.header.stamp))
        if self.recorder is None or not self.recorder.recording:
            return
        try:
            q = joint_positions_from_msg(msg, self.names)
        except MessageError as exc:
            self.recorder.reject("state", str(exc))
            self.get_logger().warning(f"joint state rejected: {exc}", throttle_duration_sec=1.0)
            return
        self.last_state_stamp = from_time(msg.header.stamp)
        self.recorder.add_state(self.last_state_stamp, q, time.monotonic())

    def _on_action(self, parse, stamp: float) -> None:
        self._saw("action", stamp)
        if self.recorder is None or not self.recorder.recording:
            return
        try:
            targets = parse()
        except MessageError as exc:
            self.recorder.reject("action", str(exc))
            self.get_logger().warning(f"action rejected: {exc}", throttle_duration_sec=1.0)
            return
        self.recorder.add_action(stamp, targets, time.monotonic())

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self._on_action(lambda: targets_from_trajectory(msg, self.names), from_time(msg.header.stamp))

    def _on_joint_command(self, msg: JointState) -> None:
        self._on_action(lambda: joint_positions_from_msg(msg, self.names), from_time(msg.header.stamp))

    def _on_image(self, camera: str, msg: Image) -> None:
        receive = time.monotonic()
        self._saw(f"images/{camera}", from_time(msg.header.stamp))
        try:
            rgb = image_from_msg(msg, self.expected_hw)
        except MessageError as exc:
            if self.recorder is not None:
                self.recorder.reject(f"images/{camera}", str(exc))
            self.get_logger().warning(f"image from {camera} rejected: {exc}", throttle_duration_sec=1.0)
            return
        self.last_frame[camera] = receive
        if self._stale[camera]:
            self._stale[camera] = False
            self.get_logger().info(f"camera {camera} is publishing again")
        if self.preview is not None:
            self.latest_images[camera] = rgb
        if self.recorder is not None and self.recorder.recording:
            self.recorder.add_image(camera, from_time(msg.header.stamp), rgb, receive)

    def _on_depth(self, camera: str, msg: Image) -> None:
        self._saw(f"depth/{camera}", from_time(msg.header.stamp))
        if self.recorder is None or not self.recorder.recording:
            return
        try:
            depth = depth_from_msg(msg, self.expected_hw)
        except MessageError as exc:
            self.recorder.reject(f"depth/{camera}", str(exc))
            self.get_logger().warning(f"depth from {camera} rejected: {exc}", throttle_duration_sec=1.0)
            return
        self.recorder.add_depth(camera, from_time(msg.header.stamp), depth, time.monotonic())

    def _on_info(self, camera: str, msg: CameraInfo) -> None:
        if camera not in self.intrinsics:
            k = msg.k
            self.intrinsics[camera] = {"width": msg.width, "height": msg.height, "fx": k[0], "fy": k[4], "cx": k[2],
                                       "cy": k[5]}

    def _on_instruction(self, msg: String) -> None:
        self.set_instruction(msg.data)

    def _on_params(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "instruction" and param.value:
                self.set_instruction(param.value)
        return SetParametersResult(successful=True)

    def set_instruction(self, text: str) -> None:
        self._pending_instruction = text
        if self.recorder is not None:
            self.recorder.set_instruction(text)

    # -- episode control -----------------------------------------------------------------
    def start_episode(self) -> str:
        rec = self._ensure_recorder()
        index = rec.start()
        return f"episode {index} recording: {rec.instruction!r}"

    def save_episode(self, success: bool) -> str:
        index = self.recorder.save(success) if self.recorder else self._ensure_recorder().save(success)
        self._auto_reset()
        return f"episode {index} saved (success={success})"

    def discard_episode(self) -> str:
        (self.recorder or self._ensure_recorder()).discard()
        self._auto_reset()
        return "episode discarded"

    def _auto_reset(self) -> None:
        if self.reset_client is not None:
            self.reset_client.call_async(Trigger.Request())

    def _run(self, response, fn, *args):
        try:
            response.success, response.message = True, fn(*args)
        except Exception as exc:  # a bad request is answered, never fatal
            response.success, response.message = False, str(exc)
            self.get_logger().warning(response.message)
        return response

    def _srv_start(self, request, response):
        return self._run(response, self.start_episode)

    def _srv_save(self, request, response):
        return self._run(response, self.save_episode, bool(request.data))

    def _srv_discard(self, request, response):
        return self._run(response, self.discard_episode)

    def console_action(self, action: str) -> None:
        rec = self.recorder
        try:
            if action == "toggle":
                self.save_episode(True) if rec is not None and rec.recording else self.start_episode()
            elif action == "save_failure":
                self.save_episode(False)
            elif action == "discard":
                self.discard_episode()
            elif action == "rerecord":
                if rec is not None and rec.recording:
                    self.discard_episode()
                self.start_episode()
            elif action == "quit":
                if rec is not None and rec.recording:
                    self.discard_episode()
                self.context.try_shutdown()
        except Exception as exc:
            self.get_logger().warning(f"{action}: {exc}")

    # -- housekeeping ----------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        if self.recorder is not None:
            self.recorder.tick()
            if self.recorder.recording:
                for cam, last in self.last_frame.items():
                    if not self._stale[cam] and last and now - last > self.p.stale_after_s:
                        self._stale[cam] = True
                        self.stale_events[cam] += 1
                        self.get_logger().error(f"camera {cam} stopped publishing ({now - last:.1f}s); "
                                                "its steps are counted as gaps")
        if self.preview is not None and self.latest_images:
            from vla_robot.recorder.console import status_line

            self.preview.update(dict(self.latest_images), status_line(self.status()))

    def status(self) -> dict:
        base = self.recorder.status() if self.recorder else {"recording": False, "episode": 0,
                                                             "instruction": self._pending_instruction}
        base["stale_cameras"] = [c for c, s in self._stale.items() if s]
        base["stale_events"] = dict(self.stale_events)
        return base

    def _publish_diagnostics(self) -> None:
        status = self.status()
        self.status_pub.publish(String(data=json.dumps(status, default=str)))
        problems = sum(status.get("gaps", {}).values()) + sum(status.get("rejected", {}).values()) \
            + status.get("queue_overflows", 0) + status.get("write_errors", 0)
        level = diagnostics.ERROR if status["stale_cameras"] else diagnostics.WARN if problems else diagnostics.OK
        message = (f"stale cameras {status['stale_cameras']}" if status["stale_cameras"]
                   else status.get("last_error") or "ok")
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.diag_pub.publish(diagnostics.diagnostic_array(f"{self.get_name()}: recorder", self.spec.name, level,
                                                           message, status, stamp))

    def close(self) -> None:
        if self.console is not None:
            self.console.running = False
        if self.recorder is not None:
            self.recorder.close()
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass


def main(args=None) -> None:
    spin_single(RecorderNode, args)
