"""Bad input over real DDS: malformed images, NaN joint states, unknown joint names,
out-of-limit commands and a camera that stops publishing are rejected or flagged, counted
in /diagnostics, and never crash a node. The arm is the real WidowX driver on a virtual
Dynamixel bus, so the out-of-limit check is made on the bytes written to the wire."""

import math
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture
def stack(composed, tmp_path_factory):
    """A fresh stack per run, so a rerun of a failed attempt does not inherit its open episode."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from vla_robot.robots.virtual_servos import virtual_chain
    from vla_robot.robots.widowx import WidowX250, WidowXConfig
    from vla_robot.ros.arm_node import ArmNode
    from vla_robot.ros.recorder_node import RecorderNode

    proc = composed
    ctx = proc.context
    chain = virtual_chain("dynamixel", WidowXConfig().motor_ids)
    robot = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    arm = proc.add(ArmNode({"robot": "widowx", "publish_rate_hz": 50.0}, robot=robot, context=ctx))
    store = str(tmp_path_factory.mktemp("bad") / "bad.zarr")
    rec = proc.add(RecorderNode({"store": store, "cameras": "cam", "width": 32, "height": 24, "control_rate_hz": 10.0,
                                 "instruction": "test bad inputs", "stale_after_s": 0.5, "max_wait_s": 0.3},
                                context=ctx))
    tester = proc.add(Node("tester", context=ctx))
    tester.diag = {}
    tester.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: tester.diag.update({s.name: m for s in m.status}), 10)
    pubs = {
        "image": tester.create_publisher(Image, "cam/image_raw", 10),
        "state": tester.create_publisher(JointState, "joint_states", 10),
        "traj": tester.create_publisher(JointTrajectory, "joint_trajectory", 10),
    }
    proc.start()
    time.sleep(1.0)  # discovery
    yield proc, arm, rec, tester, pubs, chain


def now(node):
    return node.get_clock().now().nanoseconds * 1e-9


def publish_good(tester, pubs, arm, seconds, images=True):
    from vla_robot.ros.conversions import image_to_msg, trajectory_msg

    end = time.monotonic() + seconds
    home = np.array(arm.spec.home)
    while time.monotonic() < end:
        t = now(tester)
        if images:
            pubs["image"].publish(image_to_msg(np.full((24, 32, 3), 100, np.uint8), t, "cam"))
        pubs["traj"].publish(trajectory_msg(arm.names, home, t))
        time.sleep(0.02)


def diag_values(tester, name):
    from vla_robot.ros.diagnostics import status_level, status_values

    msg = tester.diag[name]
    return status_values(msg), status_level(msg)


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_bad_inputs_are_rejected_counted_and_nothing_crashes(stack):
    from vla_robot.ros.conversions import image_to_msg, joint_state_msg, trajectory_msg
    from vla_robot.ros.diagnostics import ERROR

    proc, arm, rec, tester, pubs, chain = stack
    assert rec.start_episode().startswith("episode 0")
    publish_good(tester, pubs, arm, 1.0)

    wrong_encoding = image_to_msg(np.zeros((24, 32, 3), np.uint8), now(tester), "cam")
    wrong_encoding.encoding = "mono8"
    wrong_size = image_to_msg(np.zeros((48, 64, 3), np.uint8), now(tester), "cam")
    truncated = image_to_msg(np.zeros((24, 32, 3), np.uint8), now(tester), "cam")
    truncated.data = bytes(truncated.data)[:100]
    for msg in (wrong_encoding, wrong_size, truncated):
        pubs["image"].publish(msg)
    nan_state = joint_state_msg(arm.names, [math.nan] + [0.0] * 6, [0.0] * 7, now(tester))
    pubs["state"].publish(nan_state)
    unknown = trajectory_msg(["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "claw"],
                             [0.0] * 7, now(tester))
    short = trajectory_msg(["waist"], [0.1], now(tester))
    hostile = trajectory_msg(arm.names, [40.0, -40.0, 40.0, -40.0, 40.0, -40.0, 5.0], now(tester))
    for msg in (unknown, short, hostile):
        pubs["traj"].publish(msg)

    assert wait_for(lambda: rec.status()["rejected"]["images/cam"] == 3 and rec.status()["rejected"]["state"] >= 1
                    and arm.rejected == 2)
    assert "encoding 'mono8' not supported" in rec.recorder.stats.last_error or rec.status()["rejected"]["state"]
    assert "unknown joint names ['claw']" in arm.last_error or "missing joints" in arm.last_error
    # the hostile command was clamped before the wire: every goal written since is inside the limits
    assert wait_for(lambda: arm.robot.clamp.position_clamps >= 1)
    from test_drivers_servo import TICK, sync_writes

    from vla_robot.robots.dynamixel_bus import XM430_TABLE

    writes = sync_writes(chain, XM430_TABLE.goal_position)
    assert writes, "no goal was written"
    for goals in writes:
        for sid, lo, hi in zip(arm.robot.ids[:6], arm.spec.lower, arm.spec.upper):
            assert round(2048 + lo / TICK) - 1 <= goals[sid] <= round(2048 + hi / TICK) + 1

    # the camera stops publishing while commands and joint states go on
    publish_good(tester, pubs, arm, 1.5, images=False)
    assert rec.status()["stale_cameras"] == ["cam"]
    assert wait_for(lambda: "recorder: recorder" in tester.diag and diag_values(tester, "recorder: recorder")[1] == ERROR), \
        (list(tester.diag), diag_values(tester, "recorder: recorder") if "recorder: recorder" in tester.diag else None)
    publish_good(tester, pubs, arm, 1.0)
    assert wait_for(lambda: rec.status()["stale_cameras"] == [])
    # the hole counts once complete steps follow it; saved earlier, it would be the episode's trimmed end
    publish_good(tester, pubs, arm, 0.5)
    assert wait_for(lambda: rec.status()["gaps"]["images/cam"] >= 8, timeout=10.0), rec.status()["gaps"]
    message = rec.save_episode(True)
    assert "episode 0 saved" in message
    status = rec.status()
    assert status["gaps"]["images/cam"] >= 8  # ~1.5 s of 10 Hz steps without a frame: counted, not filled, kept at save
    from vla_robot.data import EpisodeStore

    s = EpisodeStore.open(rec.p.store)
    ep = s.read_episode(0)
    gaps = np.diff(ep["stamps/state"][:, 0])
    assert gaps.max() > 1.0  # the hole is visible in the timeline
    assert s.episode_meta(0)["extra"]["gaps"]["images/cam"] == status["gaps"]["images/cam"]

    # diagnostics on the wire carry the counters
    assert wait_for(lambda: diag_values(tester, "recorder: recorder")[0].get("rejected.images/cam") == "3")
    assert wait_for(lambda: int(diag_values(tester, "arm: arm")[0].get("commands_rejected", "0")) == 2)
    values, _ = diag_values(tester, "arm: arm")
    assert int(values["position_clamps"]) >= 1
    assert all(n.context.ok() for n in (arm, rec))  # nobody crashed
