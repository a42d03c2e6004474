"""ROS 2 bags (mcap, sqlite3) into the episode store, aligned by the recorder's own code.

A bag and a live recording of the same streams give the same store: the import aligns with
``align_samples`` (the offline form of the recorder's ``StreamAligner``), places each episode's
grid where the recorder would (rosbag_cuts.py: markers are the operator's start and save), and
writes steps and episode metadata with the recorder's own ``store_record`` functions (format 2:
``step_index``, per-stream ``skew``, marked holes, ``extra.alignment``). Messages are decoded by
the functions the recorder node uses (``vla_robot.ros.decode``); a malformed one is skipped and
counted, as live. Bags are read with ``rosbags`` (pure Python, no ROS install).

Two passes per bag: the first decodes and checks every message, keeps joint vectors and only the
position of each camera frame, and finds the episodes; ``align_samples`` then picks the steps;
the second pass decodes just the frames those steps use and writes them in order. Memory grows
with the number of messages, not their size: ~0.34 kB per joint sample and ~0.2 kB per frame
(tracemalloc), ~0.2 GB for an hour of joints at 100 Hz, actions at 30 Hz and two cameras with
depth, whatever the resolution. Compressed frames are decoded twice (checked in the first pass as
the recorder checks them).

A corrupt bag (unreadable, truncated, undecodable messages) never takes the good ones with it:
the episodes that ended before the damage are committed, the one it falls in is named in the
report and discarded, and the import goes on with the next bag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_robot.recorder.aligner import AlignedStep, AlignerConfig, Alignment, Sample, align_samples
from vla_robot.recorder.rosbag_cuts import BagCuts, Cut, CutError, Ref
from vla_robot.recorder.rosbag_mapping import BagMapping, MappingError
from vla_robot.recorder.store_record import alignment_report, commit_meta, step_record

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


class _Progress:
    """One bag's share of the progress bar (two passes over its messages; the second may stop early)."""

    def __init__(self, bar, total: int):
        self.bar, self.left = bar, total

    def step(self) -> None:
        if self.bar is not None and self.left > 0:
            self.bar.update(1)
            self.left -= 1

    def finish(self) -> None:
        if self.bar is not None and self.left > 0:
            self.bar.update(self.left)
        self.left = 0


@dataclass
class _Job:
    """An aligned episode being written in the second pass."""

    cut: Cut
    entry: dict
    alignment: Alignment
    requested: float | None  # operator's start -> save (markers), seconds
    writer: object = None
    written: int = 0

    def write_ready(self, importer: "BagImporter", frames: dict[int, object], uses: dict[int, int]) -> bool:
        """Write every step whose frames are decoded; True once all are written."""
        steps = self.alignment.steps
        while self.written < len(steps):
            step = steps[self.written]
            refs = [smp.value for smp in step.samples.values()]
            if any(r.value is None and r.seq not in frames for r in refs):
                return False
            if self.writer is None:
                self.writer = importer.store.begin_episode(
                    self.cut.instruction, operator=importer.mapping.operator,
                    extra={"source": "rosbag", "bag": Path(self.entry["bag"]).name, "bag_time": self.cut.begin})
            samples = {name: Sample(smp.stamp, smp.value.receive,
                                    smp.value.value if smp.value.value is not None else frames[smp.value.seq])
                       for name, smp in step.samples.items()}
            self.writer.append(step_record(AlignedStep(step.index, step.grid_time, samples, step.skew),
                                           importer.cameras, importer.depth_cameras))
            for r in refs:
                if r.value is None:
                    uses[r.seq] -= 1
                    if not uses[r.seq]:
                        del uses[r.seq]
                        frames.pop(r.seq, None)
            self.written += 1
        return True

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None


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
        self.streams = ("state", "action", *(f"images/{c}" for c in self.cameras),
                        *(f"depth/{c}" for c in self.depth_cameras))
        self.config = AlignerConfig(mapping.control_rate_hz, self.streams, max_skew_s=mapping.max_skew_s,
                                    max_wait_s=mapping.max_wait_s)
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
            raise BagError(f"{bag}: " + "; ".join(problems) + ". The bag has: "
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
            # extra joints (xs_sdk's fingers) are ignored, as the recorder node ignores them
            return joint_positions_from_msg(msg, self.names, allow_extra=True).astype(np.float32)
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
                count = sum(c.msgcount for c in reader.connections if c.topic in self.roles)
            finally:
                reader.close()
            readable.append((bag, typestore, types, count))
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=2 * sum(r[3] for r in readable), desc="from-rosbag", unit="msg")
        try:
            for bag, typestore, types, count in readable:
                self._import_bag(bag, typestore, types, _Progress(bar, 2 * count))
        finally:
            if bar is not None:
                bar.close()
            if self.store is not None:
                self.store.close()
        return self.report

    def _import_bag(self, bag: Path, typestore, types: dict[str, str], progress: _Progress) -> None:
        cuts = self._scan(bag, typestore, types, progress)
        jobs = []
        on_clock = cuts.on_log_clock(self.config.max_lag_s)
        for cut in cuts.cuts:
            entry = {"bag": str(bag), "bag_time": cut.begin, "instruction": cut.instruction}
            if cut.failed:
                self.report.failed.append({"bag": str(bag), "episode": cut.begin, "reason": cut.failed})
                log.error("%s: %s; the episode starting at %.3f was discarded", bag, cut.failed, cut.begin)
                continue
            if cut.verdict == "discard":
                reason = "a new start marker came before it ended" if cut.begin in cuts.discarded_starts \
                    else "discard marker"
                self.report.discarded.append({**entry, "steps": 0, "reason": reason})
                continue
            window = cuts.window(cut, on_clock)
            alignment = None
            if window is not None:
                start, end = window
                samples = cuts.episode_samples(start, end, self.config.period, self.config.max_lag_s)
                alignment = align_samples(samples, self.config, start=start, end=end)
            if alignment is None or not alignment.steps:
                waited = ", ".join(alignment.stats.warmup_streams) if alignment else "state"
                self.report.discarded.append({**entry, "steps": 0, "reason": (
                    f"no aligned frames (no step had a sample of every stream; waited for: {waited})")})
                continue
            requested = (cut.end - cut.begin) if cut.operator and cut.end is not None else None
            jobs.append(_Job(cut, entry, alignment, requested))
        if jobs:
            self._write(bag, typestore, types, jobs, progress)
        progress.finish()

    def _scan(self, bag: Path, typestore, types: dict[str, str], progress: _Progress) -> BagCuts:
        """First pass: every usable sample and the episode cuts; a corrupt stretch fails the episode it is in."""
        from rosbags.rosbag2 import Reader

        from vla_robot.ros.decode import MessageError

        m = self.mapping
        cuts = BagCuts(m, self.streams, name=bag.name)
        try:
            with Reader(bag) as reader:
                conns = [c for c in reader.connections if c.topic in self.roles]
                for seq, (conn, log_ns, raw) in enumerate(reader.messages(connections=conns)):
                    progress.step()
                    role, receive = self.roles[conn.topic], log_ns * 1e-9
                    cuts.seen(receive)
                    if role.startswith("info/"):
                        continue
                    msg = typestore.deserialize_cdr(raw, conn.msgtype)
                    if role == "marker":
                        cuts.marker(str(getattr(msg, m.episodes.marker_field)).strip().lower(), receive)
                        continue
                    if role == "instruction":
                        cuts.instruction_message(str(getattr(msg, m.episodes.instruction_field)).strip(), receive)
                        continue
                    try:
                        value = self._decode(role, msg, types[conn.topic])
                    except MessageError as exc:  # skipped and counted, as the live recorder does
                        self.report.rejected[role] += 1
                        log.warning("%s: %s at %.3f rejected: %s", bag.name, conn.topic, receive, exc)
                        continue
                    stamp = receive if m.stamps == "receive" else msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                    small = role in ("state", "action")  # joint vectors stay; frames are decoded again when written
                    cuts.add(role, stamp, Ref(seq, receive, value if small else None))
            cuts.finish()
        except (BagError, MappingError, CutError):
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt bag: the running episode is named and dropped
            if cuts.fail(f"{type(exc).__name__}: {exc}") is None:
                self.report.failed.append({"bag": str(bag), "episode": None, "reason": f"{type(exc).__name__}: {exc}"})
                log.error("%s: %s; no episode was running", bag, exc)
        return cuts

    def _write(self, bag: Path, typestore, types: dict[str, str], jobs: list[_Job], progress: _Progress) -> None:
        """Second pass: decode the frames the aligned steps use, write the steps in order, commit each episode."""
        from rosbags.rosbag2 import Reader

        uses: dict[int, int] = {}  # bag position -> steps still to write that use the frame there
        for job in jobs:
            for step in job.alignment.steps:
                for name, smp in step.samples.items():
                    if smp.value.value is None:
                        uses[smp.value.seq] = uses.get(smp.value.seq, 0) + 1
        frames: dict[int, object] = {}
        pending = list(jobs)
        if self.store is None:  # a store that does not fit these bags is an error before anything is written
            with Reader(bag) as reader:
                self.store = self._open_store(reader, typestore)
        try:
            with Reader(bag) as reader:
                conns = [c for c in reader.connections if c.topic in self.roles]
                for seq, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
                    progress.step()
                    if seq in uses:
                        msg = typestore.deserialize_cdr(raw, conn.msgtype)
                        frames[seq] = self._decode(self.roles[conn.topic], msg, types[conn.topic])
                    while pending and pending[0].write_ready(self, frames, uses):
                        self._commit(pending[0])
                        pending.pop(0)
                    if not pending:
                        break
            if pending:
                raise EOFError(f"the bag ended before the frames of step {pending[0].written} of the episode")
        except Exception as exc:  # noqa: BLE001 - the bag changed or broke between the passes, or a commit failed
            for failed in pending:
                failed.abandon()
                self.report.failed.append({"bag": str(bag), "episode": failed.cut.begin,
                                           "reason": f"{type(exc).__name__}: {exc}"})
            log.error("%s: %s; %d episode(s) from %.3f on were discarded", bag, exc, len(pending),
                      pending[0].cut.begin if pending else 0.0)

    def _commit(self, job: _Job) -> None:
        steps = job.alignment.steps
        skews = {s: [step.skew[s] for step in steps] for s in self.streams}
        requested = job.requested if job.requested is not None else \
            (job.alignment.stats.steps + job.alignment.stats.hole_steps + job.alignment.stats.warmup_steps
             + job.alignment.stats.trimmed_steps) * self.config.period
        alignment = alignment_report(job.alignment.stats, control_rate_hz=self.config.control_rate_hz,
                                     grid_start=job.alignment.grid_start, requested_s=requested,
                                     max_skew_s=job.alignment.max_skew_s,
                                     skews=skews)
        success = bool(job.cut.verdict)
        index = job.writer.commit(success=success, **commit_meta(job.alignment.stats, alignment))
        self.report.saved.append({**job.entry, "index": index, "success": success, "steps": job.writer.num_frames,
                                  "dropped_steps": alignment["hole_steps"], "notes": alignment["notes"]})
