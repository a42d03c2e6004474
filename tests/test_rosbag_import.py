"""`vla-data from-rosbag`: bags written with rosbags' own writer, free-running streams, imported.

Every message encodes where it came from (joint sample j, camera frame n), so the test can
check each stored step against what was written: the right samples, stamps and skews.
"""

import sqlite3
import time
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

SPEC = get_robot_spec("widowx250")
NAMES = SPEC.joint_names
T0 = 1_700_000_000.0  # header stamps: ROS time of a real session
RATE = 30.0
W, H = 32, 24
CAMERAS = {  # free-running: 29.97 fps, each with its own phase; the wrist sends JPEG (CompressedImage)
    "front": {"fps": 29.97, "phase": 0.002, "topic": "/front/image_raw", "latency": 0.015},
    "wrist": {"fps": 29.97, "phase": -0.003, "topic": "/wrist/image_raw/compressed", "latency": 0.020},
}
JOINT_HZ, JOINT_LATENCY = 100.0, 0.001
ACTION_HZ, ACTION_PHASE = 30.0, 0.001


def joints(phase: float, first: float) -> np.ndarray:
    """A pose inside the arm's limits (so the store validates); joint 0 carries the sample's index."""
    q = SPEC.lower_array + (SPEC.upper_array - SPEC.lower_array) * (0.5 + 0.4 * np.sin(np.arange(len(NAMES)) + phase))
    q[0] = first
    return q


def free_running(origin: float, start: float, stop: float, cameras: dict = CAMERAS, depth: bool = True,
                 pause: tuple | None = None):
    """(log time, stream, stamp, value) of every sample over [start, stop) s after ``origin``, times
    rounded to the nanosecond as a bag stores them: joints at 100 Hz (joint 0 = sample index),
    actions at 30 Hz, each camera at its own rate and phase (value: the frame's number), depth with
    the front camera. ``pause = (camera, from_s, to_s)``: that camera sends nothing in between."""
    def ns(t):  # a header stamp as decoded (sec + nanosec * 1e-9)
        sec = np.floor(t)
        return float(sec + round((t - sec) * 1e9) * 1e-9)

    def log_ns(t):  # a log time as decoded (ns * 1e-9)
        return round(t * 1e9) * 1e-9

    for j in range(int(np.ceil(start * JOINT_HZ)), int(np.ceil(stop * JOINT_HZ))):
        stamp = ns(origin + j / JOINT_HZ)
        yield log_ns(stamp + JOINT_LATENCY), "state", stamp, joints(j * 0.01, j * 1e-3)
    for i in range(int(np.ceil(start * ACTION_HZ)), int(np.ceil(stop * ACTION_HZ))):
        stamp = ns(origin + i / ACTION_HZ + ACTION_PHASE)
        yield log_ns(stamp + 0.002), "action", stamp, joints(1.0 + i * 0.03, 0.5 + i * 1e-3)
    for name, cam in cameras.items():
        period = 1.0 / cam["fps"]
        for n in range(int(np.ceil((start - cam["phase"]) / period)), int(np.ceil((stop - cam["phase"]) / period))):
            at = cam["phase"] + n * period
            if pause and pause[0] == name and pause[1] <= at < pause[2]:
                continue
            stamp = ns(origin + at)
            yield log_ns(stamp + cam["latency"]), f"images/{name}", stamp, n
            if depth and name == "front":
                yield log_ns(stamp + cam["latency"]), "depth/front", stamp, n


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

    def streams(self, start: float, stop: float, depth: bool = True, cameras: dict = CAMERAS, origin: float = T0,
                pause: tuple | None = None) -> None:
        """Free-running streams over [start, stop) seconds after ``origin``, as messages."""
        for log_time, stream, stamp, value in free_running(origin, start, stop, cameras, depth, pause):
            if stream in ("state", "action"):
                topic = "/joint_states" if stream == "state" else "/arm/applied_command"
                self.add(log_time, topic, "sensor_msgs/msg/JointState", self.joint_state(stamp, value))
            elif stream == "depth/front":
                self.add(log_time, "/front/depth/image_raw", "sensor_msgs/msg/Image", self.depth(stamp, value))
            else:
                topic = cameras[stream.split("/")[1]]["topic"]
                if topic.endswith("compressed"):
                    self.add(log_time, topic, "sensor_msgs/msg/CompressedImage", self.compressed(stamp, frame_image(value)))
                else:
                    self.add(log_time, topic, "sensor_msgs/msg/Image", self.image(stamp, frame_image(value)))

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

    # every grid step from the first joint state (T0) to the bag's newest stamp is there: the
    # wrist's first frame comes 30 ms after T0, so step 0 is warm-up (named), then none is missing
    al = meta["extra"]["alignment"]
    newest = max(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for *_, m in b.messages)  # the grid's end
    assert al["warmup_steps"] == 1 and "images/wrist" in al["notes"][0]
    assert (al["hole_steps"], al["trimmed_steps"], meta["hole_steps"]) == (0, 0, 0)
    assert n == int((newest - T0) * RATE) + 1 - al["warmup_steps"] == meta["grid_steps"]
    np.testing.assert_array_equal(ep["step_index"], np.arange(n))  # format 2: no jump, no hole
    assert vla_data(["validate", str(out)]) == 0

    # step k's state is the joint sample nearest to its grid time T0 + (k + warm-up) / 30
    state_t = ep["stamps/state"][:, 0]
    grid = al["grid_start"] + ep["step_index"] / RATE
    assert al["grid_start"] == pytest.approx(T0 + al["warmup_steps"] / RATE)
    for stream in ("state", "action", *(f"images/{c}" for c in CAMERAS), "depth/front"):
        np.testing.assert_allclose(ep[f"skew/{stream}"], ep[f"stamps/{stream}"][:, 0] - grid, atol=1e-4)
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


RAW_CAMERAS = {  # both raw (the live feed gets the same pixels); the wrist runs fast, 30.03 fps
    "front": {"fps": 29.97, "phase": 0.004, "topic": "/front/image_raw", "latency": 0.015},
    "wrist": {"fps": 30.03, "phase": -0.011, "topic": "/wrist/image_raw", "latency": 0.020},
}


def test_a_bag_gives_the_store_the_live_recorder_writes_from_the_same_streams(tmp_path):
    """The same free-running streams (cameras at 29.97 and 30.03 fps, joints at 100 Hz, the wrist
    silent for 0.4 s mid-episode) go once into the live recorder (``EpisodeRecorder``, fed as the
    node feeds it, started and saved on the stamp clock) and once into a bag with markers at the
    operator's start and save. Both stores hold the same steps: same samples, stamps, skews,
    step indices and hole."""
    from vla_robot.data import CameraSpec, StoreSchema
    from vla_robot.recorder.session import EpisodeRecorder

    # host-clock stamps in the recent past, fed at once: the recorder never sees a stream silent
    # for max_wait_s, so it decides each step as soon as every stream has a sample after it
    origin = round(time.monotonic() - 6.0, 3)
    # after 1.5 s of pre-roll (the recorder checks its clock); as the bag logs them (ns)
    start, save = (round((origin + at) * 1e9) * 1e-9 for at in (1.5, 4.2))
    events = sorted(free_running(origin, 0.0, 4.7, RAW_CAMERAS, pause=("wrist", 2.5, 2.9)), key=lambda e: e[0])
    b = BagBuilder(tmp_path / "session")
    b.streams(0.0, 4.7, cameras=RAW_CAMERAS, origin=origin, pause=("wrist", 2.5, 2.9))
    b.add(start, "/episode_marker", "std_msgs/msg/String", b.string("start"))
    b.add(save, "/episode_marker", "std_msgs/msg/String", b.string("success"))
    b.close()
    cameras = {n: {"topic": c["topic"]} for n, c in RAW_CAMERAS.items()}
    cameras["front"]["depth"] = "/front/depth/image_raw"
    mapping = BagMapping.from_dict(mapping_dict(cameras=cameras, episodes={"split": "marker",
                                                                           "marker_topic": "/episode_marker"}))
    report = BagImporter(mapping, str(tmp_path / "bag.zarr"), progress=False).run([tmp_path / "session"])
    assert report.ok and len(report.saved) == 1

    schema = StoreSchema(robot="widowx250", joint_names=NAMES, control_rate_hz=RATE,
                         action_space={"type": "joint_position", "names": list(NAMES)},
                         cameras=[CameraSpec("front", W, H, encoding="png", depth=True),
                                  CameraSpec("wrist", W, H, encoding="png")], state_dim=7, action_dim=7)
    rec = EpisodeRecorder(EpisodeStore.create(str(tmp_path / "live.zarr"), schema), ("front", "wrist"), RATE,
                          max_wait_s=30.0, depth_cameras=("front",), robot="widowx250")
    rec.set_instruction("put the cube on the grinning face")
    deadline = None
    for receive, stream, stamp, value in events:
        if receive >= start and not rec.recording and deadline is None:
            rec.start(clock_now=start)
        if receive >= save and deadline is None:
            deadline = rec.begin_save(clock_now=save)  # frames in transit still arrive after the save
        if stream in ("state", "action"):
            (rec.add_state if stream == "state" else rec.add_action)(stamp, value.astype(np.float32), receive)
        elif stream == "depth/front":
            rec.add_depth("front", stamp, np.full((H, W), 400 + value, np.uint16), receive)
        else:
            rec.add_image(stream.split("/")[1], stamp, frame_image(value), receive)
    while not rec.save_ready(deadline):
        time.sleep(0.01)
    rec.finish_save(True)
    rec.close()

    live, imported = EpisodeStore.open(tmp_path / "live.zarr"), EpisodeStore.open(tmp_path / "bag.zarr")
    a, b_ = live.read_episode(0), imported.read_episode(0)
    assert set(a) == set(b_)
    for key in a:
        np.testing.assert_array_equal(a[key], b_[key], err_msg=key)
    la, lb = (s.episode_meta(0)["extra"]["alignment"] for s in (live, imported))
    for key in ("grid_start", "grid_steps", "warmup_steps", "hole_steps", "holes", "trimmed_steps", "max_skew_s",
                "skew"):
        assert la[key] == lb[key], key
    # and what they hold is right: the grid runs start -> save, the wrist's pause is one marked hole
    n_grid = int(round((save - start) * RATE)) + 1
    assert la["grid_start"] == pytest.approx(start, abs=1e-9) and la["grid_steps"] == n_grid
    (hole,) = lb["holes"]
    assert hole["streams"] == ["images/wrist"] and 9 <= hole["length"] <= 12  # 0.4 s at 30 Hz, edges within a period
    assert len(b_["step_index"]) == n_grid - hole["length"] and np.diff(b_["step_index"]).max() == hole["length"] + 1
    for name, cam in RAW_CAMERAS.items():
        assert np.abs(b_[f"skew/images/{name}"]).max() <= 0.5 / cam["fps"]


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
    # the streams are stamped on the bag's clock: each grid runs from its start marker to its save
    # marker, as the recorder's runs from the operator's start to the save (every step stored)
    for i, (begin, end) in enumerate([(0.5, 2.5), (4.5, 5.8)]):
        al = store.episode_meta(i)["extra"]["alignment"]
        assert al["grid_start"] == pytest.approx(T0 + begin, abs=1e-6)
        assert store.episode_length(i) == al["grid_steps"] == round((end - begin) * RATE) + 1
        assert al["warmup_steps"] == al["hole_steps"] == al["trimmed_steps"] == 0
        assert al["requested_s"] == pytest.approx(end - begin, abs=1e-6)


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
