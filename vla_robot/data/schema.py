"""What a store holds: the robot, its action space and its cameras (the root attributes).

The schema is written once when the store is created and validated on load, so that a
recorder, a trainer and an evaluator agree on shapes, rates and encodings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vla_robot.data.codecs import IMAGE_FORMATS

FORMAT_NAME = "vla-robot-episodes"
# 2: per-step ``step_index`` (grid step; a jump marks a hole) and ``skew/<stream>``. A version-1
# reader would build action chunks across holes, so the version went up; version-1 stores are
# read as contiguous with unknown skew, and upgraded in place when opened for appending.
FORMAT_VERSION = 2
DEPTH_ENCODINGS = ("zstd", "png")
ACTION_SPACE_KINDS = ("joint_position", "joint_delta", "ee_delta", "ee_pose")


@dataclass(frozen=True)
class CameraSpec:
    """One camera stream. ``encoding`` is ``jpeg`` / ``jpegxl`` (lossy, ``quality`` 1..100) or ``png`` (lossless).

    ``depth=True`` adds an aligned uint16 HxW depth stream stored losslessly (``depth_encoding``).
    ``intrinsics`` is a dict like ``CameraIntrinsics.as_dict()`` (fx, fy, cx, cy, ...) or None.
    """

    name: str
    width: int
    height: int
    intrinsics: dict | None = None
    encoding: str = "jpeg"
    quality: int = 90
    depth: bool = False
    depth_encoding: str = "zstd"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"camera name {self.name!r} must be non-empty and contain no '/'")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: width/height must be positive, got {self.width}x{self.height}")
        if self.encoding not in IMAGE_FORMATS:
            raise ValueError(
                f"camera {self.name!r}: encoding {self.encoding!r} not allowed; choose one of {IMAGE_FORMATS}"
            )
        if not 1 <= self.quality <= 100:
            raise ValueError(f"camera {self.name!r}: quality must be in 1..100, got {self.quality}")
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(
                f"camera {self.name!r}: depth_encoding {self.depth_encoding!r} not allowed; choose one of {DEPTH_ENCODINGS}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CameraSpec:
        return cls(**data)


@dataclass(frozen=True)
class StoreSchema:
    """Root attributes of a store.

    ``action_space`` describes what ``action`` means, e.g.
    ``{"type": "joint_position", "names": [...]}`` or ``{"type": "ee_delta", "frame": "base", ...}``;
    ``type`` must be one of ``ACTION_SPACE_KINDS``. ``extra`` holds anything else (site, notes).
    """

    robot: str
    joint_names: tuple[str, ...]
    control_rate_hz: float
    action_space: dict
    cameras: tuple[CameraSpec, ...]
    state_dim: int
    action_dim: int
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(
            self, "cameras", tuple(c if isinstance(c, CameraSpec) else CameraSpec.from_dict(c) for c in self.cameras)
        )
        if not self.robot:
            raise ValueError("schema.robot must be a non-empty robot model name")
        if self.control_rate_hz <= 0:
            raise ValueError(f"schema.control_rate_hz must be > 0, got {self.control_rate_hz}")
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"schema.state_dim/action_dim must be > 0, got {self.state_dim}/{self.action_dim}")
        kind = self.action_space.get("type") if isinstance(self.action_space, dict) else None
        if kind not in ACTION_SPACE_KINDS:
            raise ValueError(f"schema.action_space['type'] is {kind!r}; choose one of {ACTION_SPACE_KINDS}")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"schema.cameras has duplicate names: {names}")

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"unknown camera {name!r}; this store has {list(self.camera_names)}")

    def streams(self) -> list[str]:
        """Every timestamped stream: ``state``, ``action``, ``images/<cam>``, ``depth/<cam>``."""
        out = ["state", "action"] + [f"images/{c.name}" for c in self.cameras]
        return out + [f"depth/{c.name}" for c in self.cameras if c.depth]

    def to_attrs(self) -> dict[str, Any]:
        return {
            "format": {"name": FORMAT_NAME, "version": FORMAT_VERSION},
            "robot": self.robot,
            "joint_names": list(self.joint_names),
            "control_rate_hz": float(self.control_rate_hz),
            "action_space": self.action_space,
            "cameras": [c.to_dict() for c in self.cameras],
            "state_dim": int(self.state_dim),
            "action_dim": int(self.action_dim),
            "extra": self.extra,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StoreSchema:
        return cls(
            robot=attrs["robot"],
            joint_names=tuple(attrs["joint_names"]),
            control_rate_hz=attrs["control_rate_hz"],
            action_space=dict(attrs["action_space"]),
            cameras=tuple(CameraSpec.from_dict(c) for c in attrs["cameras"]),
            state_dim=int(attrs["state_dim"]),
            action_dim=int(attrs["action_dim"]),
            extra=dict(attrs.get("extra", {})),
        )
