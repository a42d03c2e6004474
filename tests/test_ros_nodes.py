"""Node shells over real DDS: the arm node's JointState rate and torque/e-stop services on a
virtual WidowX bus, a RealSense camera node replaying a software-device recording, and
leader-follower teleop driving a follower from a leader's joint states."""

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def call(node, srv_type, name, **fields):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=5.0), name
    future = client.call_async(srv_type.Request(**fields))
    assert wait_for(future.done, 5.0), name
    return future.result()


@pytest.fixture
def proc(composed):
    return composed


def test_arm_node_publishes_joint_states_above_50hz_and_serves_torque_and_estop(proc):
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool, Trigger

    from vla_robot.robots.virtual_servos import virtual_chain
    from vla_robot.robots.widowx import WidowX250, WidowXConfig
    from vla_robot.ros.arm_node import ArmNode
    from vla_robot.ros.conversions import from_time, trajectory_msg
    from vla_robot.ros.qos import COMMAND_QOS, RECORD_COMMAND_QOS, SENSOR_QOS
    from trajectory_msgs.msg import JointTrajectory

    chain = virtual_chain("dynamixel", WidowXConfig().motor_ids)
    robot = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    arm = proc.add(ArmNode({"robot": "widowx", "publish_rate_hz": 100.0}, robot=robot, context=proc.context))
    client = proc.add(Node("client", context=proc.context))
    stamps = []
    client.create_subscription(JointState, "joint_states", lambda m: stamps.append(from_time(m.header.stamp)), SENSOR_QOS)
    cmd = client.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
    applied = []
    client.create_subscription(JointState, "/arm/applied_command", lambda m: applied.append(np.array(m.position)),
                               RECORD_COMMAND_QOS)
    proc.start()
    assert wait_for(lambda: len(stamps) > 150, timeout=30.0)
    # The publish period from the stamps themselves, in the steadiest 20-message window: a tick a
    # starved or paused process delays says nothing about the node's rate.
    intervals = np.diff(stamps[5:150])
    interval = min(float(np.median(intervals[k:k + 20])) for k in range(len(intervals) - 20))
    assert interval <= 1.0 / 50.0, f"JointState every {interval * 1e3:.1f} ms (< 50 Hz): {np.round(intervals * 1e3, 1)}"
    target = np.array([0.1, -0.1, 0.1, 0.0, 0.2, 0.0, 0.03])
    cmd.publish(trajectory_msg(arm.names, target, 0.0))
    assert wait_for(lambda: np.allclose(robot.read_state().positions, target, atol=2e-3))
    wild = target.copy()
    wild[2] = 5.0  # the elbow far past its upper limit
    cmd.publish(trajectory_msg(arm.names, wild, 0.0))
    assert wait_for(lambda: len(applied) >= 2)
    assert applied[-1][2] <= arm.spec.upper[2] + 1e-9  # the echo is the clamped command ...
    np.testing.assert_allclose(applied[-1], robot.last_targets)  # ... the one written to the bus
    held = robot.last_targets.copy()
    reply = call(client, Trigger, "/arm/estop")
    assert reply.success and "holding the last commanded pose" in reply.message
    assert all(chain.torque_enabled(sid) for sid in robot.ids)  # category 2: torque stays on, nothing falls
    cmd.publish(trajectory_msg(arm.names, target * 0, 0.0))
    assert wait_for(lambda: arm.guard.counts["refused_while_held"] == 1)  # ignored while e-stopped, counted
    np.testing.assert_allclose(robot.last_targets, held)
    assert not call(client, Trigger, "/arm/start").success  # start is refused while the e-stop is latched
    assert call(client, Trigger, "/arm/release_estop").success
    time.sleep(0.2)
    np.testing.assert_allclose(robot.last_targets, held)  # release alone moves nothing
    cmd.publish(trajectory_msg(arm.names, target * 0, 0.0))
    assert wait_for(lambda: arm.guard.counts["refused_while_held"] == 2)  # still held until ~/start
    assert call(client, Trigger, "/arm/start").success
    cmd.publish(trajectory_msg(arm.names, target, 0.0))
    assert wait_for(lambda: np.allclose(robot.last_targets, target))  # commands move it again after start


def test_realsense_camera_node_publishes_image_and_camera_info(proc, tmp_path):
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    from test_cameras_sources import FPS, H, W, record_software_realsense
    from vla_robot.ros.camera_node import CameraNode
    from vla_robot.ros.conversions import from_time, image_from_msg
    from vla_robot.ros.qos import SENSOR_QOS

    path = tmp_path / "sw.db3"
    record_software_realsense(path, n_frames=20)
    got, infos = [], []
    client = proc.add(Node("client", context=proc.context))
    client.create_subscription(Image, "front/image_raw", got.append, SENSOR_QOS)
    client.create_subscription(CameraInfo, "front/camera_info", infos.append, SENSOR_QOS)
    proc.start()
    time.sleep(0.5)
    cam = proc.add(CameraNode({"source": "realsense", "camera_name": "front", "width": W, "height": H, "fps": float(FPS),
                               "playback_file": str(path)}, context=proc.context))
    assert wait_for(lambda: len(got) >= 5 and infos)
    rgb = image_from_msg(got[-1], (H, W))
    assert rgb[0, 0, 2] == 7  # the recorded colour pattern (blue channel constant)
    assert infos[-1].k[0] == pytest.approx(55.0) and infos[-1].header.frame_id == "front_optical_frame"
    stamps = [from_time(m.header.stamp) for m in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[-1] - time.time()) < 5.0  # device clock mapped to ROS (wall) time
    assert cam.health.frames >= 5


def test_leader_follower_teleop_drives_the_follower(proc):
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_robot.robots.specs import SO100
    from vla_robot.ros.conversions import joint_state_msg, targets_from_trajectory
    from vla_robot.ros.qos import COMMAND_QOS, SENSOR_QOS
    from vla_robot.ros.teleop_node import TeleopNode

    proc.add(TeleopNode({"mode": "leader", "robot": "so100"}, context=proc.context))
    client = proc.add(Node("client", context=proc.context))
    commands = []
    client.create_subscription(JointTrajectory, "joint_trajectory", commands.append, COMMAND_QOS)
    leader = client.create_publisher(JointState, "leader/joint_states", SENSOR_QOS)
    proc.start()
    time.sleep(0.5)
    q = np.array([0.1, -1.0, 1.2, 0.3, -0.2, 0.5])
    names = list(SO100.joint_names)
    for _ in range(5):
        leader.publish(joint_state_msg(names[::-1], q[::-1], None, 1.0))  # any joint order
        time.sleep(0.05)
    assert wait_for(lambda: len(commands) >= 3)
    np.testing.assert_allclose(targets_from_trajectory(commands[-1], names), q)


def test_twist_teleop_moves_the_end_effector_through_ik(proc):
    from geometry_msgs.msg import Twist
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_robot.robots.specs import WIDOWX_250
    from vla_robot.ros.conversions import joint_state_msg, targets_from_trajectory
    from vla_robot.ros.qos import COMMAND_QOS, SENSOR_QOS
    from vla_robot.ros.teleop_node import TeleopNode

    teleop = proc.add(TeleopNode({"mode": "twist", "robot": "widowx250", "rate_hz": 20.0}, context=proc.context))
    client = proc.add(Node("client", context=proc.context))
    commands = []
    client.create_subscription(JointTrajectory, "joint_trajectory", commands.append, COMMAND_QOS)
    state = client.create_publisher(JointState, "joint_states", SENSOR_QOS)
    twist = client.create_publisher(Twist, "cmd_twist", COMMAND_QOS)
    proc.start()
    names = list(WIDOWX_250.joint_names)
    assert wait_for(lambda: (state.publish(joint_state_msg(names, WIDOWX_250.home, None, 0.0)) or True)
                    and teleop._joint_positions is not None)
    assert wait_for(lambda: twist.get_subscription_count() > 0)  # twists sent before discovery are lost
    msg = Twist()
    msg.linear.z = 1.0  # straight up at full speed
    for _ in range(10):
        twist.publish(msg)
        time.sleep(0.05)
    bad = Twist()
    bad.linear.x = float("nan")
    twist.publish(bad)
    assert wait_for(lambda: teleop.rejected == 1)
    start, _ = teleop.ee.kin.forward(np.array(WIDOWX_250.home[:-1]))

    def moved():  # from the last command received (delivery may trail the teleop's ticks)
        end, _ = teleop.ee.kin.forward(targets_from_trajectory(commands[-1], names)[:-1])
        return end - start

    assert wait_for(lambda: moved()[2] > 0.03), moved()
    assert abs(moved()[0]) < 0.01 and abs(moved()[1]) < 0.01


def test_recorder_records_aligned_depth_losslessly(proc, tmp_path):
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_robot.data import EpisodeStore
    from vla_robot.robots.specs import WIDOWX_250
    from vla_robot.ros.conversions import depth_to_msg, image_to_msg, joint_state_msg, trajectory_msg
    from vla_robot.ros.qos import COMMAND_QOS, RELIABLE_SENSOR_QOS, joint_qos
    from vla_robot.ros.recorder_node import RecorderNode

    store = str(tmp_path / "depth.zarr")
    rec = proc.add(RecorderNode({"store": store, "cameras": "cam", "depth_cameras": "cam", "width": 8, "height": 6,
                                 "control_rate_hz": 10.0, "instruction": "depth", "sensor_qos": "reliable",
                                 "encoding": "png"},
                                context=proc.context))
    pub = proc.add(Node("pub", context=proc.context))
    rgb_pub = pub.create_publisher(Image, "cam/image_raw", RELIABLE_SENSOR_QOS)
    depth_pub = pub.create_publisher(Image, "cam/depth/image_raw", RELIABLE_SENSOR_QOS)
    state_pub = pub.create_publisher(JointState, "joint_states", joint_qos("reliable"))
    cmd_pub = pub.create_publisher(JointTrajectory, "joint_trajectory", COMMAND_QOS)
    proc.start()
    time.sleep(1.0)
    rec.start_episode()
    names = WIDOWX_250.joint_names
    for k in range(12):
        t = 1000.0 + k * 0.1
        depth_pub.publish(depth_to_msg(np.full((6, 8), 400 + k * 1000, np.uint16), t, "cam"))
        rgb_pub.publish(image_to_msg(np.full((6, 8, 3), k, np.uint8), t, "cam"))
        state_pub.publish(joint_state_msg(names, WIDOWX_250.home, None, t))
        cmd_pub.publish(trajectory_msg(names, WIDOWX_250.home, t))
        time.sleep(0.02)
    bad = depth_to_msg(np.zeros((6, 8), np.uint16), 2000.0, "cam")
    bad.encoding = "32FC1"
    depth_pub.publish(bad)
    assert wait_for(lambda: rec.status()["rejected"].get("depth/cam") == 1)
    rec.save_episode(True)
    ep = EpisodeStore.open(store).read_episode(0)
    n = len(ep["state"])
    assert n >= 10
    k0 = int(ep["images/cam"][0, 0, 0, 0])
    np.testing.assert_array_equal(ep["depth/cam"][:, 0, 0], 400 + (k0 + np.arange(n)) * 1000)  # same step as colour
