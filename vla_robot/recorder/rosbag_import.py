"""ROS 2 bags (mcap, sqlite3) into the episode store, aligned by the recorder's own aligner.

Why replay in bag time: a bag keeps, for every message, its header stamp and the time the
recorder that wrote the bag received it (the log time). Feeding the recorder's
``StreamAligner`` the same (stamp, receive) pairs, and polling it at each message's log time,
makes the offline import take the decisions a live recorder would have taken on the same
streams: same grid, same tolerance, same waiting for late streams, same gaps. Bags are read
with ``rosbags`` (pure Python, no ROS install); messages are decoded by the same functions the
recorder node uses (``vla_robot.ros.decode``).

A corrupt bag (unreadable, truncated, undecodable messages) never takes the good ones with
it: each episode is committed as soon as it ends, the bad episode is discarded and named in
the report, and the import goes on with the next bag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_robot.recorder.aligner import AlignedStep, AlignerConfig, StreamAligner
from vla_robot.recorder.rosbag_mapping import MARKERS, BagMapping, MappingError

log = logging.getLogger("vla_robot.rosbag")

JOINT_STATE = "sensor_msgs/msg/JointState"
TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


class BagError(ValueError):
    """A bag that does not fit the mapping (unknown topic, wrong or unknown type); nothing is written."""


@dataclass
class ImportReport:
    saved: list[dict] = field(default_factory=list)  # committed episodes
    discarded: list[dict] = field(default_factory=list)  # discarded on purpose (marker) or empty
    failed: list[dict] = field(default_factory=list)  # corrupt bag or episode, with the reason
    rejected: dict[str, int] = field(default_factory=dict)  # malformed messages per stream (skipped, as live)

    @property
    def ok(self) -> bool:
        return not self.failed


def step_frame(step: AlignedStep, cameras: tuple[str, ...], depth_cameras: tuple[str, ...]) -> dict:
    """One aligned step as ``EpisodeWriter.append`` takes it (what the recorder's writer thread writes)."""
    s = step.samples
    return {
        "state": s["state"].value,
        "action": s["action"].value,
        "images": {c: s[f"images/{c}"].value for c in cameras},
        "depth": {c: s[f"depth/{c}"].value for c in depth_cameras},
        "stamp": s["state"].stamp,
        "receive_stamp": s["state"].receive,
        "stamps": {
            "action": (s["action"].stamp, s["action"].receive),
            **{f"images/{c}": (s[f"images/{c}"].stamp, s[f"images/{c}"].receive) for c in cameras},
            **{f"depth/{c}": (s[f"depth/{c}"].stamp, s[f"depth/{c}"].receive) for c in depth_cameras},
        },
    }


def _typestore(mapping: BagMapping, reader):
    """Standard types of the bag's ROS distribution, the definitions the bag carries, and the mapping's own."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    distro = (mapping.ros_distro or getattr(reader, "ros_distro", None) or "").upper()
    store = get_typestore(getattr(Stores, f"ROS2_{distro}", Stores.LATEST))
    types: dict = {}
    for conn in reader.connections:
        if conn.msgtype in store.types or conn.msgdef.format == MessageDefinitionFormat.NONE:
            continue
        try:
            if conn.msgdef.format == MessageDefinitionFormat.MSG:
                types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
            else:
                types.update(get_types_from_idl(conn.msgdef.data))
        except Exception as exc:  # noqa: BLE001 - a broken embedded definition only matters if that topic is used
            log.warning("%s: cannot parse the embedded definition of %s: %s", reader.path, conn.msgtype, exc)
    for name, path in mapping.types.items():
        try:
            types.update(get_types_from_msg(Path(path).read_text(), name))
        except OSError as exc:
            raise MappingError(f"types.{name}: cannot read {path}: {exc}") from None
    if types:
        store.register(types)
    return store


class BagImporter:
    """Imports bags into one store; see :meth:`run`."""

    def __init__(self, mapping: BagMapping, out: str, progress: bool = True):
        from vla_robot.robots.specs import get_robot_spec

        self.mapping = mapping
        self.out = str(out)
        self.progress = progress
        self.spec = get_robot_spec(mapping.robot)
        self.names = list(self.spec.joint_names)
        self.cameras = tuple(mapping.cameras)
        self.depth_cameras = tuple(c for c, t in mapping.cameras.items() if t.depth)
        self.roles = self._roles()
        self.report = ImportReport(rejected={r: 0 for r in self.roles.values()})
        self.store = None

    def _roles(self) -> dict[str, str]:
        """topic -> role (state, action, images/<cam>, depth/<cam>, info/<cam>, marker, instruction)."""
        m = self.mapping
        roles = {m.joint_states: "state", m.action: "action"}
        for name, cam in m.cameras.items():
            roles[cam.topic] = f"images/{name}"
            if cam.depth:
                roles[cam.depth] = f"depth/{name}"
            if cam.info:
                roles[cam.info] = f"info/{name}"
        if m.episodes.marker_topic:
            roles[m.episodes.marker_topic] = "marker"
        if m.episodes.instruction_topic:
            roles[m.episodes.instruction_topic] = "instruction"
        named = m.topics()
        if len(roles) != len(named):
            topic = next(t for t in named.values() if list(named.values()).count(t) > 1)
            keys = [k for k, t in named.items() if t == topic]
            raise MappingError(f"{topic} is named for both {keys[0]} and {keys[1]}; every stream needs its own topic")
        return roles

    # -- checks before anything is written --------------------------------------------------
    @staticmethod
    def _allowed(role: str) -> tuple[str, ...]:
        kind = role.split("/")[0]
        return {"state": (JOINT_STATE,), "action": (JOINT_STATE, TRAJECTORY), "images": (IMAGE, COMPRESSED),
                "depth": (IMAGE,), "info": (CAMERA_INFO,)}.get(kind, ())  # markers, instructions: any type

    def check(self, bag: Path, reader, typestore) -> dict[str, str]:
        """topic -> message type for every mapped topic; a clear error for anything that does not fit."""
        topics = {c.topic: c.msgtype for c in reader.connections}
        where = {v: k for k, v in self.mapping.topics().items()}
        problems = []
        for topic, role in self.roles.items():
            if topic not in topics:
                problems.append(f"{where[topic]} names {topic}, which {bag.name} does not have")
                continue
            msgtype = topics[topic]
            allowed = self._allowed(role)
            if msgtype not in typestore.types:
                problems.append(f"{where[topic]}: the type {msgtype} of {topic} is not a standard message and {bag.name} "
                                f"carries no definition of it; add one to the mapping: types: {{{msgtype}: path/to/"
                                f"{msgtype.rsplit('/', 1)[-1]}.msg}}")
            elif allowed and msgtype not in allowed:
                problems.append(f"{where[topic]}: {topic} carries {msgtype}; it must be one of {list(allowed)}")
            elif role in ("marker", "instruction"):
                name = getattr(self.mapping.episodes, f"{role}_field")
                have = [f for f in getattr(typestore.types[msgtype], "__dataclass_fields__", {})
                        if not f.startswith("__")]
                if name not in have:
                    problems.append(f"{where[topic]}: {msgtype} has no field {name!r} (fields: {have}); set "
                                    f"episodes.{role}_field")
        if problems:
            raise BagError(f"{bag}: " + "; ".join(problems) + f". The bag has: "
                           + ", ".join(f"{t} ({ty})" for t, ty in sorted(topics.items())))
        return {t: topics[t] for t in self.roles}

    # -- the store -------------------------------------------------------------------------
    def _first(self, reader, typestore, topic):
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            return typestore.deserialize_cdr(raw, conn.msgtype), conn.msgtype
        raise BagError(f"{reader.path}: {topic} has no messages; the camera's size cannot be known")

    def _open_store(self, reader, typestore):
        from vla_robot.data import CameraSpec, EpisodeStore, StoreError, StoreSchema

        try:
            store = EpisodeStore.open(self.out, mode="a")
        except StoreError as exc:
            if "no episode store" not in str(exc):
                raise
            store = None
        specs = []
        for name, cam in self.mapping.cameras.items():
            msg, msgtype = self._first(reader, typestore, cam.topic)
            h, w = self._decode(f"images/{name}", msg, msgtype).shape[:2]
            intrinsics = None
            if cam.info:
                info, _ = self._first(reader, typestore, cam.info)
                k = info.k
                intrinsics = {"width": int(info.width), "height": int(info.height), "fx": float(k[0]), "fy": float(k[4]),
                              "cx": float(k[2]), "cy": float(k[5])}
            specs.append(CameraSpec(name, int(w), int(h), intrinsics, encoding=self.mapping.encoding,
                                    quality=self.mapping.quality, depth=bool(cam.depth)))
        if store is not None:
            have = [(c.name, c.width, c.height, c.depth) for c in store.schema.cameras]
            want = [(c.name, c.width, c.height, c.depth) for c in specs]
            if store.schema.robot != self.spec.name or have != want:
                store.close()
                raise BagError(f"{self.out} holds {store.schema.robot} cameras {have}; these bags give {self.spec.name} "
                               f"cameras {want}: import into another store")
            return store
        schema = StoreSchema(robot=self.spec.name, joint_names=self.spec.joint_names,
                             control_rate_hz=float(self.mapping.control_rate_hz),
                             action_space={"type": "joint_position", "names": self.names}, cameras=specs,
                             state_dim=self.spec.dof, action_dim=self.spec.dof, extra={"source": "rosbag"})
        return EpisodeStore.create(self.out, schema)

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self, role: str, msg, msgtype: str):
        from vla_robot.ros.decode import (compressed_image_from_msg, depth_from_msg, image_from_msg,
                                          joint_positions_from_msg, targets_from_trajectory)

        if role == "state":
            return joint_positions_from_msg(msg, self.names).astype(np.float32)
        if role == "action":
            parse = targets_from_trajectory if msgtype == TRAJECTORY else joint_positions_from_msg
            return parse(msg, self.names).astype(np.float32)
        if role.startswith("images/"):
            return compressed_image_from_msg(msg) if msgtype == COMPRESSED else image_from_msg(msg)
        if role.startswith("depth/"):
            return depth_from_msg(msg)
        return msg.data  # marker, instruction: std_msgs/String

    # -- import ------------------------------------------------------------------------------
    def run(self, bags: list[str | Path]) -> ImportReport:
        """Check every bag against the mapping first (nothing is written if one does not fit), then import."""
        from rosbags.rosbag2 import Reader

        bags = [Path(b) for b in bags]
        readable = []
        for bag in bags:
            try:
                reader = Reader(bag)
                reader.open()
            except Exception as exc:  # noqa: BLE001 - unreadable bag: named, the others go on
                self.report.failed.append({"bag": str(bag), "episode": None, "reason": (
                    f"cannot open: {exc} (a truncated or corrupt bag; `ros2 bag reindex` or `mcap recover` may rescue "
                    "it)")})
                continue
            try:
                typestore = _typestore(self.mapping, reader)
                types = self.check(bag, reader, typestore)
            finally:
                reader.close()
            readable.append((bag, typestore, types))
        total = 0
        for bag, _, _ in readable:
            with Reader(bag) as reader:
                total += sum(c.msgcount for c in reader.connections if c.topic in self.roles)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="from-rosbag", unit="msg")
        try:
            for bag, typestore, types in readable:
                self._import_bag(bag, typestore, types, bar)
        finally:
            if bar is not None:
                bar.close()
            if self.store is not None:
                self.store.close()
        return self.report

    def _import_bag(self, bag: Path, typestore, types: dict[str, str], bar) -> None:
        from rosbags.rosbag2 import Reader

        m = self.mapping
        episode = _Episode(self, bag)
        try:
            with Reader(bag) as reader:
                if self.store is None:
                    self.store = self._open_store(reader, typestore)
                conns = [c for c in reader.connections if c.topic in self.roles]
                last_state_log = None
                for conn, log_ns, raw in reader.messages(connections=conns):
                    if bar is not None:
                        bar.update(1)
                    role, receive = self.roles[conn.topic], log_ns * 1e-9
                    if role == "marker":
                        msg = typestore.deserialize_cdr(raw, conn.msgtype)
                        episode.marker(str(getattr(msg, m.episodes.marker_field)).strip().lower(), receive)
                        continue
                    if role == "instruction":
                        msg = typestore.deserialize_cdr(raw, conn.msgtype)
                        text = str(getattr(msg, m.episodes.instruction_field)).strip()
                        if m.episodes.split == "instruction":
                            episode.end(m.episodes.success)
                            episode.instruction = text
                            episode.begin(receive)
                        else:
                            episode.instruction = text
                        continue
                    if role == "state":
                        if m.episodes.split == "gap" and last_state_log is not None \
                                and receive - last_state_log > m.episodes.gap_s:
                            episode.end(m.episodes.success)
                        last_state_log = receive
                        if m.episodes.split in ("bag", "gap") and not episode.open:
                            episode.begin(receive)
                    if not episode.open or role.startswith("info/"):
                        continue
                    msg = typestore.deserialize_cdr(raw, conn.msgtype)
                    try:
                        value = self._decode(role, msg, types[conn.topic])
                    except ValueError as exc:  # MessageError: skipped and counted, as the live recorder does
                        self.report.rejected[role] += 1
                        log.warning("%s: %s at %.3f rejected: %s", bag.name, conn.topic, receive, exc)
                        continue
                    stamp = receive if m.stamps == "receive" else msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                    episode.add(role, stamp, value, receive)
            episode.end(m.episodes.success)
        except (BagError, MappingError):
            episode.abandon(None)
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt bag: the running episode is named and dropped
            episode.abandon(f"{type(exc).__name__}: {exc}")


class _Episode:
    """The episode being cut out of one bag: its aligner and its store writer."""

    def __init__(self, importer: BagImporter, bag: Path):
        self.importer = importer
        self.bag = bag
        m = importer.mapping
        streams = ("state", "action", *(f"images/{c}" for c in importer.cameras),
                   *(f"depth/{c}" for c in importer.depth_cameras))
        self.aligner = StreamAligner(AlignerConfig(m.control_rate_hz, streams, tolerance_s=m.tolerance_s,
                                                   max_wait_s=m.max_wait_s))
        self.instruction = m.instruction
        self.writer = None
        self.start = None

    @property
    def open(self) -> bool:
        return self.writer is not None

    def begin(self, receive: float) -> None:
        if self.open:
            return
        if not self.instruction:
            raise MappingError("no instruction for the episode: set `instruction:` in the mapping or name "
                               "episodes.instruction_topic")
        imp = self.importer
        self.aligner.reset()
        self.start = receive
        self.writer = imp.store.begin_episode(self.instruction, operator=imp.mapping.operator,
                                              extra={"source": "rosbag", "bag": self.bag.name, "bag_time": receive})

    def add(self, role: str, stamp: float, value, receive: float) -> None:
        self.aligner.add(role, stamp, value, receive)
        self._write(self.aligner.poll(now=receive))

    def _write(self, steps) -> None:
        imp = self.importer
        for step in steps:
            self.writer.append(step_frame(step, imp.cameras, imp.depth_cameras))

    def marker(self, word: str, receive: float) -> None:
        if word not in MARKERS:
            raise BagError(f"{self.bag}: marker {word!r} at {receive:.3f} is not one of {list(MARKERS)}")
        verdict = MARKERS[word]
        if verdict is None:  # start
            if self.open:
                log.warning("%s: 'start' at %.3f while an episode runs: the running one is discarded", self.bag.name,
                            receive)
                self.end("discard")
            self.begin(receive)
        elif self.open:
            self.end(self.importer.mapping.episodes.success if verdict == "default" else verdict)

    def end(self, verdict) -> None:
        """Close the running episode: ``True``/``False`` commit with that label, ``"discard"`` drops it."""
        if not self.open:
            return
        self._write(self.aligner.flush())
        writer, self.writer = self.writer, None
        imp, stats = self.importer, self.aligner.stats
        entry = {"bag": str(self.bag), "bag_time": self.start, "steps": writer.num_frames,
                 "instruction": writer.meta["instruction"], "dropped_steps": stats.dropped_steps}
        if verdict == "discard" or writer.num_frames == 0:
            writer.discard()
            imp.report.discarded.append({**entry, "reason": "discard marker" if verdict == "discard"
                                         else "no aligned frames (are all streams in this stretch of the bag?)"})
            return
        entry["index"] = writer.commit(success=bool(verdict), gaps=dict(stats.gaps), dropped_steps=stats.dropped_steps)
        entry["success"] = bool(verdict)
        imp.report.saved.append(entry)

    def abandon(self, reason: str | None) -> None:
        if self.open:
            writer, self.writer = self.writer, None
            writer.discard()
        if reason is not None:
            self.importer.report.failed.append({"bag": str(self.bag), "episode": self.start, "reason": reason})
            log.error("%s: %s; %s", self.bag, reason, "the episode starting at "
                      f"{self.start:.3f} was discarded" if self.start is not None else "no episode was running")
