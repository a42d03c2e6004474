"""`VLAConfig`: everything that defines a VLA's architecture and its input/output contract.

It is saved inside every policy bundle, so training and deployment build the same model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from vla_robot.config_utils import unknown_fields
from vla_robot.models.grounding import GROUNDING_MODES

FAMILIES = ("paligemma", "qwen2_vl", "qwen2_5_vl", "idefics3")
TARGETS = ("continuous", "discrete")


@dataclass
class VLAConfig:
    """A pretrained VLM + `num_action_queries` learnable tokens + an MLP head → `horizon` x `action_dim`.

    `backbone` is a hub id or a local directory; `family` selects the prompt format and
    processor handling. `state_dim=0` disables the proprioception token. `gripper_dims`
    are the action dims trained with BCE (open/close) rather than Huber. `target` picks
    the continuous head or the OpenVLA-style discrete baseline (`num_bins` vocabulary
    tokens predicted with cross-entropy). `goal_loss_weight > 0` makes the head predict the
    episode's final state and act conditioned on it (`head.ActionHead`, `head.GoalHead`).
    `crop_scale < 1` centre-crops every frame to that fraction of its area before the
    processor: the policy was trained on random crops of that size (image augmentation).
    """

    family: str
    backbone: str
    action_dim: int
    horizon: int
    state_dim: int = 0
    cameras: tuple[str, ...] = ("front",)
    image_size: int = 224
    num_action_queries: int = 8
    head_hidden: int = 256
    head_layers: int = 2
    target: str = "continuous"
    gripper_dims: tuple[int, ...] = ()
    huber_delta: float = 1.0
    gripper_loss_weight: float = 1.0
    num_bins: int = 256
    goal_loss_weight: float = 0.0
    trust_remote_code: bool = False
    crop_scale: float = 1.0  # < 1: frames are centre-cropped to this area fraction (trained with random crops of it)
    grounding_question: str = "off"  # off | append | only: "where is the X?" with/for the instruction (models/grounding.py)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.gripper_dims = tuple(int(d) % max(self.action_dim, 1) for d in self.gripper_dims)
        self.validate()

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model.family {self.family!r} is not supported; allowed: {', '.join(FAMILIES)}")
        if self.target not in TARGETS:
            raise ValueError(f"model.target {self.target!r} is not supported; allowed: {', '.join(TARGETS)}")
        if not self.backbone:
            raise ValueError("model.backbone must be a hub id or a local directory")
        for name in ("action_dim", "horizon", "num_action_queries", "head_hidden", "head_layers", "image_size"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"model.{name} must be > 0, got {getattr(self, name)}")
        if self.state_dim < 0:
            raise ValueError(f"model.state_dim must be >= 0 (0 disables proprioception), got {self.state_dim}")
        if not self.cameras:
            raise ValueError("model.cameras must name at least one camera")
        if self.goal_loss_weight < 0:
            raise ValueError(f"model.goal_loss_weight must be >= 0 (0 disables it), got {self.goal_loss_weight}")
        if self.goal_loss_weight > 0 and (self.state_dim == 0 or self.target != "continuous"):
            raise ValueError("model.goal_loss_weight > 0 needs the continuous target and proprioception "
                             "(state_dim > 0): the goal is a robot state read from the query states")
        if self.grounding_question not in GROUNDING_MODES:
            raise ValueError(f"model.grounding_question {self.grounding_question!r} is not supported; "
                             f"allowed: {', '.join(GROUNDING_MODES)}")
        if not 0 < self.crop_scale <= 1:
            raise ValueError(f"model.crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.target == "discrete" and not 2 <= self.num_bins <= 1024:
            raise ValueError(f"model.num_bins must be in 2..1024, got {self.num_bins}")

    @property
    def arm_dims(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.action_dim) if d not in self.gripper_dims)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        d["gripper_dims"] = list(self.gripper_dims)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> VLAConfig:
        unknown, allowed = unknown_fields(cls, data)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; allowed: {allowed}")
        return cls(**data)
