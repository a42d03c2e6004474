"""The mapping file of ``vla-data from-rosbag``: which topics of a bag are which streams of the store.

A typed, validated config (YAML), so a typo is an error that names the key and the
allowed ones, not a silently empty episode. Example (docs/collect.md has the full reference):

    robot: widowx250
    control_rate_hz: 30
    joint_states: /joint_states                 # sensor_msgs/JointState
    action: /arm/applied_command                # sensor_msgs/JointState or trajectory_msgs/JointTrajectory
    cameras:
      front: {topic: /front/image_raw, depth: /front/depth/image_raw, info: /front/camera_info}
      wrist: {topic: /wrist/image_raw/compressed}
    episodes: {split: marker, marker_topic: /episode_marker}
    instruction: put the cube on the grinning face
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from vla_robot.config_utils import unknown_fields

SPLITS = ("bag", "marker", "instruction", "gap")
STAMPS = ("header", "receive")
# Marker topic vocabulary (std_msgs/String): what a foot pedal or a recording script publishes.
MARKERS = {"start": None, "stop": "default", "success": True, "failure": False, "discard": "discard"}


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the key and what is allowed."""


def _topic(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) < 2 or " " in value:
        raise MappingError(f"{where}: {value!r} is not a topic name; write it absolute, e.g. /joint_states")
    return value


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise MappingError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    unknown, allowed = unknown_fields(cls, data)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; allowed: {allowed}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise MappingError(f"{where}: missing key(s) {missing}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise MappingError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class CameraTopics:
    topic: str  # sensor_msgs/Image (rgb8, bgr8) or sensor_msgs/CompressedImage (JPEG, PNG)
    depth: str | None = None  # sensor_msgs/Image 16UC1 in millimetres, aligned to the colour image
    info: str | None = None  # sensor_msgs/CameraInfo: intrinsics stored with the camera

    def validate(self, name: str) -> None:
        _topic(self.topic, f"cameras.{name}.topic")
        for key in ("depth", "info"):
            if getattr(self, key) is not None:
                _topic(getattr(self, key), f"cameras.{name}.{key}")


@dataclass(frozen=True)
class EpisodeSplit:
    """How a bag becomes episodes.

    * ``bag``: each bag is one episode.
    * ``marker``: a topic (std_msgs/String, or any type with the string field ``marker_field``) says
      ``start``, then ``success`` / ``failure`` / ``stop`` (labelled ``success`` below) or ``discard``.
    * ``instruction``: every message on ``instruction_topic`` ends the running episode and starts one
      with that instruction.
    * ``gap``: joint states silent for more than ``gap_s`` end an episode; the next one starts after.
    """

    split: str = "bag"
    marker_topic: str | None = None
    instruction_topic: str | None = None  # any split: its latest message is the episode's instruction
    marker_field: str = "data"  # the string field of the marker message (std_msgs/String: data; or your own type)
    instruction_field: str = "data"
    gap_s: float = 2.0
    success: bool = True  # the label of an episode that no marker labelled

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise MappingError(f"episodes.split: {self.split!r} unknown; choose one of {SPLITS}")
        if self.split == "marker" and not self.marker_topic:
            raise MappingError("episodes.split is 'marker': name the marker topic (episodes.marker_topic)")
        if self.split == "instruction" and not self.instruction_topic:
            raise MappingError("episodes.split is 'instruction': name episodes.instruction_topic")
        for key in ("marker_topic", "instruction_topic"):
            if getattr(self, key) is not None:
                _topic(getattr(self, key), f"episodes.{key}")
        if not isinstance(self.gap_s, (int, float)) or self.gap_s <= 0:
            raise MappingError(f"episodes.gap_s must be a positive number of seconds, got {self.gap_s!r}")
        if not isinstance(self.success, bool):
            raise MappingError(f"episodes.success must be true or false, got {self.success!r}")


@dataclass(frozen=True)
class BagMapping:
    robot: str  # widowx250 | so100: joint names and order of state and action
    control_rate_hz: float
    joint_states: str
    action: str
    cameras: dict[str, CameraTopics]
    episodes: EpisodeSplit = field(default_factory=EpisodeSplit)
    instruction: str = ""  # used when no instruction topic has spoken yet
    stamps: str = "header"  # header: the messages' own stamps (as the recorder aligns) | receive: the bag's log time
    max_skew_s: float | None = None  # aligner settings, as the recorder node's (None: its per-stream default)
    max_wait_s: float = 1.0
    encoding: str = "jpeg"
    quality: int = 90
    operator: str = ""
    ros_distro: str | None = None  # standard message definitions to assume when the bag carries none
    types: dict[str, str] = field(default_factory=dict)  # extra message definitions: {pkg/msg/Name: path/to/Name.msg}

    def __post_init__(self) -> None:
        from vla_robot.data.codecs import IMAGE_FORMATS
        from vla_robot.robots.specs import get_robot_spec

        try:
            get_robot_spec(self.robot)
        except (KeyError, ValueError) as exc:
            raise MappingError(f"robot: {exc}") from None
        if not isinstance(self.control_rate_hz, (int, float)) or self.control_rate_hz <= 0:
            raise MappingError(f"control_rate_hz must be a positive number, got {self.control_rate_hz!r}")
        _topic(self.joint_states, "joint_states")
        _topic(self.action, "action")
        if not self.cameras:
            raise MappingError("cameras: name at least one camera, e.g. cameras: {front: {topic: /front/image_raw}}")
        for name, cam in self.cameras.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise MappingError(f"cameras: {name!r} is not a camera name (no '/', not empty)")
            cam.validate(name)
        self.episodes.validate()
        if self.stamps not in STAMPS:
            raise MappingError(f"stamps: {self.stamps!r} unknown; choose one of {STAMPS}")
        if self.encoding not in IMAGE_FORMATS:
            raise MappingError(f"encoding: {self.encoding!r} unknown; choose one of {IMAGE_FORMATS}")
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise MappingError(f"quality must be an integer in 1..100, got {self.quality!r}")
        if self.max_skew_s is not None and (not isinstance(self.max_skew_s, (int, float)) or self.max_skew_s <= 0):
            raise MappingError(f"max_skew_s must be a positive number of seconds (or left out: one control period or "
                               f"1.5 sample intervals per stream), got {self.max_skew_s!r}")
        if not isinstance(self.max_wait_s, (int, float)) or self.max_wait_s < 0:
            raise MappingError(f"max_wait_s must be >= 0 seconds, got {self.max_wait_s!r}")

    def topics(self) -> dict[str, str]:
        """Every topic the import reads, keyed by where the mapping names it."""
        out = {"joint_states": self.joint_states, "action": self.action}
        for name, cam in self.cameras.items():
            out[f"cameras.{name}.topic"] = cam.topic
            if cam.depth:
                out[f"cameras.{name}.depth"] = cam.depth
            if cam.info:
                out[f"cameras.{name}.info"] = cam.info
        if self.episodes.marker_topic:
            out["episodes.marker_topic"] = self.episodes.marker_topic
        if self.episodes.instruction_topic:
            out["episodes.instruction_topic"] = self.episodes.instruction_topic
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BagMapping:
        if not isinstance(data, dict):
            raise MappingError("the mapping file must be a YAML mapping (robot:, control_rate_hz:, joint_states:, ...)")
        data = dict(data)
        cams = data.get("cameras")
        if not isinstance(cams, dict):
            raise MappingError("cameras: expected a mapping of camera name -> {topic: ...}")
        data["cameras"] = {name: _build(CameraTopics, {"topic": c} if isinstance(c, str) else c, f"cameras.{name}")
                           for name, c in cams.items()}
        if "episodes" in data:
            data["episodes"] = _build(EpisodeSplit, data["episodes"], "episodes")
        if not isinstance(data.get("types", {}), dict):
            raise MappingError("types: expected a mapping {pkg/msg/Name: path/to/Name.msg}")
        return _build(cls, data, "mapping")

    @classmethod
    def load(cls, path: str | Path) -> BagMapping:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise MappingError(f"mapping file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise MappingError(f"mapping file {path} is not valid YAML: {exc}") from None
        mapping = cls.from_dict(data)
        base = path.parent
        types = {k: str((base / v).resolve()) if not Path(v).is_absolute() else v for k, v in mapping.types.items()}
        return cls.from_dict({**data, "types": types}) if types != mapping.types else mapping
