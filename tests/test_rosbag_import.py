"""`vla-data from-rosbag`: bags written with rosbags' own writer, free-running streams, imported.

Every message encodes where it came from (joint sample j, camera frame n), so the test can
check each stored step against what was written: the right samples, stamps and skews.
"""

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

rosbags = pytest.importorskip("rosbags")

from vla_robot.data import EpisodeStore  # noqa: E402
from vla_robot.data.cli import main as vla_data  # noqa: E402
from vla_robot.recorder.rosbag_import import BagError, BagImporter  # noqa: E402
from vla_robot.recorder.rosbag_mapping import BagMapping, MappingError  # noqa: E402
from vla_robot.robots.specs import get_robot_spec  # noqa: E402

NAMES = get_robot_spec("widowx250").joint_names
T0 = 1_700_000_000.0  # header stamps: ROS time of a real session
RATE = 30.0
W, H = 32, 24
CAMERAS = {  # free-running: 29.97 fps, each with its own phase; the wrist sends JPEG (CompressedImage)
    "front": {"fps": 29.97, "phase": 0.002, "topic": "/front/image_raw", "latency": 0.015},
    "wrist": {"fps": 29.97, "phase": -0.003, "topic": "/wrist/image_raw/compressed", "latency": 0.020},
}
JOINT_HZ, JOINT_LATENCY = 100.0, 0.001
ACTION_HZ, ACTION_PHASE = 30.0, 0.001


def frame_image(n: int) -> np.ndarray:
    """Camera frame n: a gradient, its index in the top-left block (n % 250)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = np.arange(W, dtype=np.uint8)[None, :] * 7
    img[..., 1] = 90
    img[:8, :8] = n % 250
    return img


class BagBuilder:
    """Writes a rosbag2 with rosbags' Writer: joint states, actions, cameras (+ depth), markers."""

    def __init__(self, path: Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.ts = get_typestore(Stores.ROS2_HUMBLE)
        self.t = self.ts.types
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.conns: dict[str, object] = {}
        self.messages: list[tuple[float, str, str, object]] = []  # (log time, topic, type, message)

    def header(self, stamp: float):
        sec = int(np.floor(stamp))
        return self.t["std_msgs/msg/Header"](stamp=self.t["builtin_interfaces/msg/Time"](
            sec=sec, nanosec=int(round((stamp - sec) * 1e9)) % 1_000_000_000), frame_id="f")

    def add(self, log_time: float, topic: str, msgtype: str, msg) -> None:
        self.messages.append((log_time, topic, msgtype, msg))

    def joint_state(self, stamp: float, q) -> object:
        return self.t["sensor_msgs/msg/JointState"](header=self.header(stamp), name=list(NAMES),
                                                    position=np.asarray(q, float), velocity=np.zeros(0),
                                                    effort=np.zeros(0))

    def image(self, stamp: float, rgb: np.ndarray):
        return self.t["sensor_msgs/msg/Image"](header=self.header(stamp), height=rgb.shape[0], width=rgb.shape[1],
                                               encoding="rgb8", is_bigendian=0, step=rgb.shape[1] * 3,
                                               data=rgb.reshape(-1).copy())

    def compressed(self, stamp: float, rgb: np.ndarray):
        import imagecodecs

        return self.t["sensor_msgs/msg/CompressedImage"](header=self.header(stamp), format="rgb8; jpeg compressed bgr8",
                                                         data=np.frombuffer(imagecodecs.jpeg8_encode(rgb, level=95),
                                                                            np.uint8).copy())

    def depth(self, stamp: float, n: int):
        mm = np.full((H, W), 400 + n, np.uint16)
        return self.t["sensor_msgs/msg/Image"](header=self.header(stamp), height=H, width=W, encoding="16UC1",
                                               is_bigendian=0, step=W * 2, data=mm.view(np.uint8).reshape(-1).copy())

    def string(self, text: str):
        return self.t["std_msgs/msg/String"](data=text)

    def streams(self, start: float, stop: float, depth: bool = True) -> None:
        """Free-running streams over [start, stop) seconds after T0."""
        for j in range(int(np.ceil(start * JOINT_HZ)), int(np.ceil(stop * JOINT_HZ))):
            stamp = T0 + j / JOINT_HZ
            q = np.sin(np.arange(len(NAMES)) + j * 0.01)
            q[0] = j * 1e-3  # the sample's index, read back from the store
            self.add(stamp + JOINT_LATENCY, "/joint_states", "sensor_msgs/msg/JointState", self.joint_state(stamp, q))
        for i in range(int(np.ceil(start * ACTION_HZ)), int(np.ceil(stop * ACTION_HZ))):
            stamp = T0 + i / ACTION_HZ + ACTION_PHASE
            a = np.cos(np.arange(len(NAMES)) + i * 0.03)
            a[0] = 0.5 + i * 1e-3
            self.add(stamp + 0.002, "/arm/applied_command", "sensor_msgs/msg/JointState", self.joint_state(stamp, a))
        for name, cam in CAMERAS.items():
            period = 1.0 / cam["fps"]
            for n in range(int(np.ceil((start - cam["phase"]) / period)), int(np.ceil((stop - cam["phase"]) / period))):
                stamp = T0 + cam["phase"] + n * period
                rgb = frame_image(n)
                if cam["topic"].endswith("compressed"):
                    self.add(stamp + cam["latency"], cam["topic"], "sensor_msgs/msg/CompressedImage",
                             self.compressed(stamp, rgb))
                else:
                    self.add(stamp + cam["latency"], cam["topic"], "sensor_msgs/msg/Image", self.image(stamp, rgb))
                if depth and name == "front":
                    self.add(stamp + cam["latency"], "/front/depth/image_raw", "sensor_msgs/msg/Image",
                             self.depth(stamp, n))

    def marker(self, at: float, word: str, topic: str = "/episode_marker") -> None:
        self.add(T0 + at, topic, "std_msgs/msg/String", self.string(word))

    def close(self) -> None:
        for log_time, topic, msgtype, msg in sorted(self.messages, key=lambda m: m[0]):
            if topic not in self.conns:
                self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts)
            self.writer.write(self.conns[topic], int(round(log_time * 1e9)), self.ts.serialize_cdr(msg, msgtype))
        self.writer.close()


def mapping_dict(**over) -> dict:
    data = {
        "robot": "widowx250", "control_rate_hz": RATE, "joint_states": "/joint_states",
        "action": "/arm/applied_command",
        "cameras": {"front": {"topic": "/front/image_raw", "depth": "/front/depth/image_raw"},
                    "wrist": "/wrist/image_raw/compressed"},
        "instruction": "put the cube on the grinning face", "encoding": "png",
    }
    data.update(over)
    return data


def write_mapping(tmp_path, **over) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping_dict(**over)))
    return path


def bag(tmp_path, name, storage="mcap", **streams):
    b = BagBuilder(tmp_path / name, storage)
    b.streams(**({"start": 0.0, "stop": 6.0} | streams))
    return b


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_free_running_streams(tmp_path, storage):
    b = bag(tmp_path, "session", storage)
    b.close()
    out = tmp_path / "demos.zarr"
    assert vla_data(["from-rosbag", str(tmp_path / "session"), "--config", str(write_mapping(tmp_path)),
                     "--out", str(out), "--quiet"]) == 0
    store = EpisodeStore.open(out)
    assert store.num_episodes == 1
    meta = store.episode_meta(0)
    assert meta["extra"]["dropped_steps"] == 0 and set(meta["extra"]["gaps"].values()) == {0}
    assert meta["extra"]["source"] == "rosbag" and meta["instruction"] == "put the cube on the grinning face"
    ep = store.read_episode(0)
    n = store.episode_length(0)
    assert n >= 6.0 * RATE - 3, f"{n} steps from a 6 s bag at 30 Hz"  # only the edges may be short

    # the grid starts at the first joint state (T0): step k's state is the joint sample nearest to
    # T0 + k / 30, and no k is missing between the first and the last step
    state_t = ep["stamps/state"][:, 0]
    k = np.round((state_t - T0) * RATE).astype(int)
    np.testing.assert_array_equal(np.diff(k), 1)
    grid = T0 + k / RATE
    assert np.abs(state_t - grid).max() <= 0.5 / JOINT_HZ + 1e-6
    j = np.round((state_t - T0) * JOINT_HZ).astype(int)
    np.testing.assert_allclose(ep["state"][:, 0], j * 1e-3, atol=1e-6)  # the state stored is that sample's
    np.testing.assert_allclose(ep["stamps/state"][:, 1] - state_t, JOINT_LATENCY, atol=1e-6)  # receive = log time

    # actions: 30 Hz, 1 ms after the grid; the stored one is the one stamped there
    i = np.round((ep["stamps/action"][:, 0] - T0 - ACTION_PHASE) * ACTION_HZ).astype(int)
    np.testing.assert_allclose(ep["action"][:, 0], 0.5 + i * 1e-3, atol=1e-6)
    assert np.abs(ep["stamps/action"][:, 0] - grid).max() <= 0.5 / RATE

    # cameras drift against the grid (29.97 fps); skew stays within half a camera period,
    # and each stored image is the very frame whose stamp is stored beside it
    for name, cam in CAMERAS.items():
        stamps = ep[f"stamps/images/{name}"][:, 0]
        skew = stamps - grid
        assert np.abs(skew).max() <= 0.5 / cam["fps"], f"{name}: skew up to {np.abs(skew).max() * 1e3:.1f} ms"
        assert skew[-1] - skew[0] > 0.004  # the drift is really there: the camera falls behind the grid
        frames = np.round((stamps - T0 - cam["phase"]) * cam["fps"]).astype(int)
        assert len(np.unique(frames)) == n  # no frame serves two steps
        markers = ep[f"images/{name}"][:, 2:6, 2:6].reshape(n, -1).mean(axis=1)
        tolerance = 0.5 if name == "front" else 4  # PNG round trip exact; JPEG on the wrist within a few levels
        np.testing.assert_allclose(markers, frames % 250, atol=tolerance)
        np.testing.assert_allclose(ep[f"stamps/images/{name}"][:, 1] - stamps, cam["latency"], atol=1e-6)
    depth_frames = np.round((ep["stamps/depth/front"][:, 0] - T0 - CAMERAS["front"]["phase"]) * 29.97).astype(int)
    np.testing.assert_array_equal(ep["depth/front"][:, 0, 0], 400 + depth_frames)


def test_episodes_cut_by_markers_with_labels_and_discards(tmp_path):
    b = bag(tmp_path, "markers")
    for at, word in [(0.5, "start"), (2.5, "success"), (3.0, "start"), (4.0, "discard"), (4.5, "START"),
                     (5.8, "failure")]:
        b.marker(at, word)
    b.close()
    episodes = {"split": "marker", "marker_topic": "/episode_marker"}
    report = BagImporter(BagMapping.load(write_mapping(tmp_path, episodes=episodes)), str(tmp_path / "s.zarr"),
                         progress=False).run([tmp_path / "markers"])
    assert report.ok and [e["success"] for e in report.saved] == [True, False]
    assert [e["reason"] for e in report.discarded] == ["discard marker"]
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert [store.episode_meta(i)["success"] for i in range(2)] == [True, False]
    assert abs(store.episode_length(0) - 2.0 * RATE) <= 2 and abs(store.episode_length(1) - 1.3 * RATE) <= 2
    first = store.read("stamps/state", 0)[0, 0] - T0
    assert 0.5 <= first < 0.5 + 2 / RATE  # the episode starts at the marker, not at the bag's start


def test_episodes_cut_by_instruction_topic_and_by_time_gaps(tmp_path):
    b = bag(tmp_path, "instr")
    b.add(T0 + 0.2, "/instruction", "std_msgs/msg/String", b.string("wave"))
    b.add(T0 + 3.0, "/instruction", "std_msgs/msg/String", b.string("point at the cat"))
    b.close()
    report = BagImporter(BagMapping.load(write_mapping(tmp_path, episodes={
        "split": "instruction", "instruction_topic": "/instruction"})), str(tmp_path / "i.zarr"), progress=False
    ).run([tmp_path / "instr"])
    assert [e["instruction"] for e in report.saved] == ["wave", "point at the cat"]

    g = BagBuilder(tmp_path / "gaps")
    g.streams(0.0, 2.0)
    g.streams(4.5, 6.0)  # everything silent for 2.5 s: the operator reset the scene
    g.close()
    report = BagImporter(BagMapping.load(write_mapping(tmp_path, episodes={"split": "gap", "gap_s": 1.0})),
                         str(tmp_path / "g.zarr"), progress=False).run([tmp_path / "gaps"])
    assert len(report.saved) == 2 and all(e["dropped_steps"] == 0 for e in report.saved)
    assert abs(report.saved[0]["steps"] - 60) <= 2 and abs(report.saved[1]["steps"] - 45) <= 2


def test_one_bag_per_episode_appends_to_an_existing_store(tmp_path):
    for name in ("a", "b"):
        bag(tmp_path, name, stop=1.5).close()
    mapping = write_mapping(tmp_path)
    out = str(tmp_path / "s.zarr")
    assert vla_data(["from-rosbag", str(tmp_path / "a"), "--config", str(mapping), "--out", out, "--quiet"]) == 0
    assert vla_data(["from-rosbag", str(tmp_path / "b"), "--config", str(mapping), "--out", out, "--quiet"]) == 0
    store = EpisodeStore.open(out)
    assert store.num_episodes == 2 and [store.episode_meta(i)["extra"]["bag"] for i in range(2)] == ["a", "b"]


def test_unknown_topic_and_wrong_type_are_clear_errors_and_write_nothing(tmp_path, capsys):
    bag(tmp_path, "s", stop=1.0).close()
    out = tmp_path / "s.zarr"
    code = vla_data(["from-rosbag", str(tmp_path / "s"), "--config",
                     str(write_mapping(tmp_path, joint_states="/arm/joint_states")), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "joint_states names /arm/joint_states, which s does not have" in err
    assert "/joint_states (sensor_msgs/msg/JointState)" in err  # the bag's topics are listed
    assert not out.exists()
    code = vla_data(["from-rosbag", str(tmp_path / "s"), "--config",
                     str(write_mapping(tmp_path, action="/wrist/image_raw/compressed",
                                       cameras={"front": "/front/image_raw"})), "--out", str(out), "--quiet"])
    assert code == 2 and "action: /wrist/image_raw/compressed carries sensor_msgs/msg/CompressedImage" \
        in capsys.readouterr().err
    with pytest.raises(MappingError, match="/front/image_raw is named for both"):
        BagImporter(BagMapping.from_dict(mapping_dict(action="/front/image_raw")), str(out), progress=False)
    with pytest.raises(MappingError, match=r"unknown key\(s\) \['fps'\]"):
        BagMapping.from_dict(mapping_dict(fps=30))
    with pytest.raises(MappingError, match="episodes.split: 'chunks' unknown"):
        BagMapping.from_dict(mapping_dict(episodes={"split": "chunks"}))
    with pytest.raises(MappingError, match="not a topic name"):
        BagMapping.from_dict(mapping_dict(joint_states="joint_states"))


def test_a_type_the_bag_does_not_define_is_named_with_the_fix(tmp_path):
    """An older sqlite3 bag carries no message definitions: a custom type must come from the mapping."""
    b = bag(tmp_path, "old", "sqlite3", stop=1.0)
    b.ts.register(__import__("rosbags.typesys", fromlist=["get_types_from_msg"]).get_types_from_msg(
        "string word\nuint32 seq", "vla_test_msgs/msg/Marker"))
    b.add(T0 + 0.1, "/episode_marker", "vla_test_msgs/msg/Marker",
          b.ts.types["vla_test_msgs/msg/Marker"](word="start", seq=1))
    b.close()
    db = next((tmp_path / "old").glob("*.db3"))
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM message_definitions WHERE topic_type = 'vla_test_msgs/msg/Marker'")
    episodes = {"split": "marker", "marker_topic": "/episode_marker"}
    with pytest.raises(BagError, match=r"vla_test_msgs/msg/Marker of /episode_marker is not a standard message.*"
                                       r"types: \{vla_test_msgs/msg/Marker: path/to/Marker.msg\}"):
        BagImporter(BagMapping.load(write_mapping(tmp_path, episodes=episodes)), str(tmp_path / "x.zarr"),
                    progress=False).run([tmp_path / "old"])
    (tmp_path / "Marker.msg").write_text("string word\nuint32 seq\n")
    types = {"vla_test_msgs/msg/Marker": "Marker.msg"}  # relative to the mapping file
    mapping = BagMapping.load(write_mapping(tmp_path, episodes=episodes, types=types))
    with pytest.raises(BagError, match=r"vla_test_msgs/msg/Marker has no field 'data' \(fields: \['word', 'seq'\]\)"):
        BagImporter(mapping, str(tmp_path / "x.zarr"), progress=False).run([tmp_path / "old"])
    mapping = BagMapping.load(write_mapping(tmp_path, episodes={**episodes, "marker_field": "word"}, types=types))
    report = BagImporter(mapping, str(tmp_path / "x.zarr"), progress=False).run([tmp_path / "old"])
    assert len(report.saved) == 1 and report.saved[0]["bag_time"] == pytest.approx(T0 + 0.1)


def test_a_corrupt_bag_is_named_and_the_good_episodes_are_kept(tmp_path, capsys):
    for name in ("good1", "bad", "good2"):
        bag(tmp_path, name, stop=1.5).close()
    mcap = next((tmp_path / "bad").glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])  # the recording PC lost power half way
    # and one bag whose second episode has a message that does not decode (a flipped disk block)
    b = bag(tmp_path, "damaged", "sqlite3", stop=4.0)
    for at, word in [(0.2, "start"), (1.5, "success"), (2.0, "start"), (3.8, "success")]:
        b.marker(at, word)
    b.close()
    db = next((tmp_path / "damaged").glob("*.db3"))
    with sqlite3.connect(db) as con:
        (topic_id,) = con.execute("SELECT id FROM topics WHERE name = '/joint_states'").fetchone()
        con.execute("UPDATE messages SET data = ? WHERE topic_id = ? AND timestamp > ? AND timestamp < ?",
                    (b"\x00\x01garbage", topic_id, int((T0 + 3.0) * 1e9), int((T0 + 3.02) * 1e9)))
    out = tmp_path / "s.zarr"
    episodes = {"split": "marker", "marker_topic": "/episode_marker"}
    code = vla_data(["from-rosbag", *(str(tmp_path / n) for n in ("good1", "bad", "good2")), "--config",
                     str(write_mapping(tmp_path)), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and f"FAILED {tmp_path / 'bad'}" in captured.err
    assert "2 episodes imported" in captured.out and "1 bag(s) failed, their good episodes kept" in captured.out
    assert [EpisodeStore.open(out).episode_meta(i)["extra"]["bag"] for i in range(2)] == ["good1", "good2"]
    report = BagImporter(BagMapping.load(write_mapping(tmp_path, episodes=episodes)), str(tmp_path / "d.zarr"),
                         progress=False).run([tmp_path / "damaged"])
    assert len(report.saved) == 1 and len(report.failed) == 1  # the first episode is kept, the second named
    assert report.failed[0]["episode"] == pytest.approx(T0 + 2.0, abs=0.01)
    assert EpisodeStore.open(tmp_path / "d.zarr").num_episodes == 1
