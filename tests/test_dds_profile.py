"""The Fast DDS profile the launch files give their nodes, and frames lost in DDS transport.

bench_realtime lost 2-55 of ~1800-3600 frames of two 640x480 cameras + depth between a reliable
KEEP_LAST-10 publisher and the recorder with Fast DDS' default transports, none with
config/fastdds_large_frames.xml (issue #13). Here: the profile is what that finding needs, the
launch files put it in every node's environment unless the operator says otherwise, Fast DDS
loads it, and a frame DDS reports lost is named in the recorder's status and episode notes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from launch_standins import SetEnvironmentVariable, exec_launch_file, install_launch_standins, launch_context

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ros2_ws" / "src" / "vla_robot_bringup"
PROFILE = PKG / "config" / "fastdds_large_frames.xml"
NS = "{http://www.eprosima.com}"
FRAME_BYTES = 2 * 640 * 480 * 3 + 640 * 480 * 2  # two RGB cameras + one depth image, one period


def test_profile_holds_the_frames_in_flight_and_repairs_within_the_publishers_history():
    root = ET.parse(PROFILE).getroot()
    shm = [t for t in root.iter(f"{NS}transport_descriptor") if t.findtext(f"{NS}type") == "SHM"]
    assert len(shm) == 1, "one shared-memory transport"
    segment = int(shm[0].findtext(f"{NS}segment_size"))
    assert segment >= 10 * FRAME_BYTES, f"{segment} B holds fewer than 10 periods of {FRAME_BYTES} B"
    participant = root.find(f"{NS}profiles/{NS}participant")
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iter(f"{NS}transport_id")]
    ids = [t.findtext(f"{NS}transport_id") for t in root.iter(f"{NS}transport_descriptor")]
    assert sorted(used) == sorted(ids) and participant.findtext(f"{NS}rtps/{NS}useBuiltinTransports") == "false"
    assert any(t.findtext(f"{NS}type") == "UDPv4" for t in root.iter(f"{NS}transport_descriptor")), \
        "UDP stays: discovery and other hosts"
    period = root.find(f"{NS}profiles/{NS}data_writer/{NS}times/{NS}heartbeat_period")
    heartbeat = int(period.findtext(f"{NS}sec")) + int(period.findtext(f"{NS}nanosec")) * 1e-9
    assert heartbeat <= 10 / 30 / 2, "a missed fragment is asked for again well before 10 newer frames push it out"
    assert 'glob("config/*.xml")' in (PKG / "setup.py").read_text(), "the package installs it"


def _launch(monkeypatch, name: str, values: dict):
    install_launch_standins(monkeypatch, lambda package: str(PKG))
    ns = exec_launch_file(ROOT / "launch" / f"{name}.launch.py", name)
    context = launch_context(ns, values)
    actions = []
    for action in ns["generate_launch_description"]().args[0]:
        if "function" in action.kwargs:
            actions += action.kwargs["function"](context)
    return actions


@pytest.mark.parametrize("name, values", [("collect", {"robot": "widowx"}), ("collect", {"robot": "sim"}),
                                          ("twin", {}), ("deploy", {"robot": "so100", "policy": "/tmp/b"}),
                                          ("deploy", {"robot": "sim", "policy": "/tmp/b"})])
def test_launch_files_give_every_node_the_profile_unless_the_operator_chose_one(monkeypatch, tmp_path, name, values):
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        monkeypatch.delenv(var, raising=False)
    actions = _launch(monkeypatch, name, values)
    assert isinstance(actions[0], SetEnvironmentVariable), "the environment is set before the first node starts"
    assert actions[0].variable == ("FASTDDS_DEFAULT_PROFILES_FILE", str(PROFILE))
    assert sum(isinstance(a, SetEnvironmentVariable) for a in actions) == 1 and len(actions) > 1

    assert not any(isinstance(a, SetEnvironmentVariable) for a in _launch(monkeypatch, name, {**values, "dds_profile": "none"}))
    own = tmp_path / "mine.xml"
    own.write_text(PROFILE.read_text())
    chosen = _launch(monkeypatch, name, {**values, "dds_profile": str(own)})
    assert chosen[0].variable == ("FASTDDS_DEFAULT_PROFILES_FILE", str(own))
    with pytest.raises(RuntimeError, match=r"dds_profile:=.*nope.xml.* is not a file"):
        _launch(monkeypatch, name, {**values, "dds_profile": str(tmp_path / "nope.xml")})
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(own))  # exported by the operator: theirs wins
    assert not any(isinstance(a, SetEnvironmentVariable) for a in _launch(monkeypatch, name, values))


LOAD = """
import rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_probe")
node.create_publisher(Image, "probe/image_raw", 10)
print("CREATED", flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def _fastdds_output(profile: Path) -> str:
    env = {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    run = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=60, env=env)
    assert "CREATED" in run.stdout, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_fast_dds_loads_the_profile_without_complaint(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text(PROFILE.read_text().replace("<segment_size>", "<segment_sise>").replace("</segment_size>",
                                                                                             "</segment_sise>"))
    assert "XMLPARSER" in _fastdds_output(broken), "Fast DDS names a bad profile: the check below can fail"
    assert "XMLPARSER" not in _fastdds_output(PROFILE)


def test_frames_lost_in_transport_are_named_in_status_and_episode_notes(tmp_path):
    from test_recorder_logic import make_store
    from vla_robot.recorder.session import EpisodeRecorder

    rec = EpisodeRecorder(make_store(tmp_path), ("cam",), 10.0, max_wait_s=5.0)
    rec.set_instruction("pick the cube")
    rec.lost_in_transport("images/cam", 2)  # before the episode: in the status, not in the episode
    status = rec.status()
    assert status["transport_lost"]["images/cam"] == 2 and status["streams"]["images/cam"]["transport_lost"] == 2
    assert status["level"] == "WARN" and any("lost in DDS transport" in p for p in status["problems"])
    rec.start()
    for k in range(40):
        t = k * 0.1
        rec.add_state(t, np.zeros(7, np.float32))
        rec.add_action(t, np.zeros(7, np.float32))
        if k not in (20, 21, 22):
            rec.add_image("cam", t, np.zeros((12, 16, 3), np.uint8))
    rec.lost_in_transport("images/cam", 3)
    rec.lost_in_transport("state", 0)  # nothing lost: nothing said
    index = rec.save(True)
    alignment = rec.store.episode_meta(index)["extra"]["alignment"]
    assert alignment["transport_lost"] == {"images/cam": 3}
    assert any("3 message(s) lost in DDS transport" in note and "images/cam 3" in note for note in alignment["notes"])
    assert alignment["hole_steps"] >= 1, "the steps themselves are a marked hole, as before"
    rec.close()


def test_a_recorder_on_an_rmw_without_message_lost_events_still_records_every_stream(composed, tmp_path, monkeypatch):
    """Cyclone and Fast DDS report lost messages; an RMW that does not (rclpy raises
    UnsupportedEventTypeError) must not keep the recorder from starting: it subscribes without
    the counter and says so once."""
    from rclpy.event_handler import UnsupportedEventTypeError
    from rclpy.node import Node

    from vla_robot.ros.recorder_node import RecorderNode

    real = Node.create_subscription
    refused, subscribed = [], []

    def create_subscription(self, msg_type, topic, *args, event_callbacks=None, **kwargs):
        if event_callbacks is not None and event_callbacks.message_lost is not None:
            refused.append(topic)
            raise UnsupportedEventTypeError("message lost events are not supported by this RMW (test)")
        subscribed.append(topic)
        return real(self, msg_type, topic, *args, **kwargs)

    monkeypatch.setattr(Node, "create_subscription", create_subscription)
    rec = composed.add(RecorderNode({"store": str(tmp_path / "s.zarr"), "cameras": "front", "depth_cameras": "front",
                                     "width": 32, "height": 24, "action_source": "teleop"}, context=composed.context))
    assert refused == ["joint_states"], "asked once, then not again"
    assert {"joint_states", "joint_trajectory", "joint_command", "front/image_raw", "front/depth/image_raw"} <= set(subscribed)
    assert rec._lost_events_supported is False
