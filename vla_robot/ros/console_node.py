"""Console node: the operator's recording console in a browser, served beside the recorder.

It subscribes to what the operator needs to see (cameras, joint states, the commanded
action) with best-effort QoS, so a slow page never holds back a camera or the recorder,
and drives episodes only through the recorder's services and status topic
(``RecorderClient``) and the arm's e-stop, release and start (``ArmClient``), whose latched
state it reads from ``/diagnostics``. The page is served on ``http://127.0.0.1:<port>/``; another
interface needs a token (see vla_robot/console/security.py).

    ros2 run vla_robot_bringup console_node --ros-args -p store:=demos.zarr -p cameras:=front,wrist
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory

from vla_robot.console.episodes import EpisodeCatalog
from vla_robot.console.live import LiveState
from vla_robot.console.security import ConsoleConfig
from vla_robot.console.server import ConsoleServer, PageInfo
from vla_robot.recorder.console import KEYS
from vla_robot.robots.specs import get_robot_spec
from vla_robot.ros.conversions import MessageError, from_time, image_from_msg, joint_positions_from_msg, targets_from_trajectory
from vla_robot.ros.executor import spin_single
from vla_robot.ros.arm_client import ArmClient
from vla_robot.ros.params import declare
from vla_robot.ros.qos import SENSOR_QOS
from vla_robot.ros.recorder_client import RecorderClient

PARAMS = {
    "host": "127.0.0.1",  # another interface needs a token
    "port": 8080,
    "token": "",  # or $VLA_CONSOLE_TOKEN; at least 16 characters
    "store": "demos.zarr",  # the recorder's store, read here for the episode list and playback
    "robot": "widowx250",  # widowx250 | so100: joint names of the plots
    "cameras": "third_person,wrist",  # topics <name>/image_raw (or .../compressed)
    "compressed": False,  # subscribe <name>/image_raw/compressed and pass its JPEGs through
    "action_source": "arm",  # as the recorder's: arm (arm/applied_command) | teleop (joint_trajectory + joint_command)
    "recorder": "/recorder",  # the recorder node whose services and status the console uses
    "arm": "/arm",  # the arm node whose estop / release_estop / start services and diagnostics the console uses
    "estop_topic": "/estop",  # std_msgs/Bool the e-stop is also published on (what a foot switch uses); "" = none
    "stream_fps": 15.0,  # MJPEG frames per second per page
    "stream_width": 640,  # camera previews are scaled down to this width
    "title": "",  # page title (default: the robot's name)
}


class OperatorControls:
    """What the page drives (``console.server.Controls``): episodes through the recorder, stops through the arm."""

    def __init__(self, recorder: RecorderClient, arm: ArmClient):
        self.act, self.set_instruction, self.status = recorder.act, recorder.set_instruction, recorder.status
        self.estop, self.resume_arm, self.arm_status = arm.estop, arm.resume, arm.status


class ConsoleNode(Node):
    def __init__(self, overrides: dict | None = None, name: str = "console", context=None):
        super().__init__(name, context=context)
        self.p = declare(self, PARAMS, overrides)
        self.spec = get_robot_spec(self.p.robot)
        self.names = list(self.spec.joint_names)
        cameras = tuple(c for c in self.p.cameras.split(",") if c)
        self.live = LiveState(cameras, self.spec.joint_names, max_width=self.p.stream_width)
        self.client = RecorderClient(self, recorder=self.p.recorder)
        self.arm = ArmClient(self, arm=self.p.arm, estop_topic=self.p.estop_topic)
        self.rejected = 0
        self.create_subscription(JointState, "joint_states", self._on_state, SENSOR_QOS)
        if self.p.action_source == "arm":
            self.create_subscription(JointState, "arm/applied_command", self._on_command, SENSOR_QOS)
        elif self.p.action_source == "teleop":
            self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, SENSOR_QOS)
            self.create_subscription(JointState, "joint_command", self._on_command, SENSOR_QOS)
        else:
            raise ValueError(f"console: action_source {self.p.action_source!r} unknown; use 'arm' or 'teleop'")
        for cam in cameras:
            if self.p.compressed:
                self.create_subscription(CompressedImage, f"{cam}/image_raw/compressed",
                                         lambda m, c=cam: self._on_compressed(c, m), SENSOR_QOS)
            else:
                self.create_subscription(Image, f"{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), SENSOR_QOS)
        config = ConsoleConfig(host=self.p.host, port=self.p.port, token=self.p.token, stream_fps=self.p.stream_fps)
        keys = {k: v for k, v in KEYS.items() if v != "quit"}  # the terminal console's keys; quit is the terminal's
        info = PageInfo(title=self.p.title or self.spec.name, cameras=cameras, joint_names=self.spec.joint_names,
                        keys=keys)
        self.server = ConsoleServer(config, OperatorControls(self.client, self.arm), self.live,
                                    EpisodeCatalog(self.p.store), info)
        self.server.start()
        self.get_logger().info(f"recording console on {self.server.url}"
                               + (" (token required: open /?token=<token> once)" if config.token else ""))

    @property
    def url(self) -> str:
        return self.server.url

    def _parse(self, parse, what: str):
        try:
            return parse()
        except MessageError as exc:
            self.rejected += 1
            self.get_logger().warning(f"{what} ignored: {exc}", throttle_duration_sec=5.0)
            return None

    def _on_state(self, msg: JointState) -> None:
        q = self._parse(lambda: joint_positions_from_msg(msg, self.names), "joint state")
        if q is not None:
            self.live.put_joints(from_time(msg.header.stamp), q)

    def _on_command(self, msg: JointState) -> None:
        q = self._parse(lambda: joint_positions_from_msg(msg, self.names), "command")
        if q is not None:
            self.live.put_action(from_time(msg.header.stamp), q)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        q = self._parse(lambda: targets_from_trajectory(msg, self.names), "trajectory")
        if q is not None:
            self.live.put_action(from_time(msg.header.stamp), q)

    def _on_image(self, camera: str, msg: Image) -> None:
        rgb = self._parse(lambda: image_from_msg(msg), f"image from {camera}")
        if rgb is not None:
            self.live.put_image(camera, rgb, from_time(msg.header.stamp))

    def _on_compressed(self, camera: str, msg: CompressedImage) -> None:
        if "jpeg" in msg.format.lower() or "jpg" in msg.format.lower():
            self.live.put_jpeg(camera, bytes(msg.data), from_time(msg.header.stamp))
        else:
            self.rejected += 1
            self.get_logger().warning(f"{camera}: compressed format {msg.format!r} is not JPEG; "
                                      "use compressed:=false", throttle_duration_sec=5.0)

    def close(self) -> None:
        self.server.stop()


def main(args=None) -> None:
    spin_single(ConsoleNode, args)
