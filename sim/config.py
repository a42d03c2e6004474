"""``TwinConfig``: everything that defines a twin episode distribution, validated at load."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sim import emoji as emoji_catalogue
from vla_robot.config_utils import unknown_fields

ROBOTS = ("widowx250", "so100")
TASKS = ("grinning_face", "reach", "push")
CAMERAS = ("third_person", "wrist")
RENDER_QUALITIES = ("fast", "high")
BRIDGE_INTRINSICS = {"width": 640, "height": 480, "fx": 623.588, "fy": 623.588, "cx": 319.501, "cy": 239.545}


@dataclass
class TwinConfig:
    """One twin: arm, task, split, cameras and timing.

    ``image_size`` is (width, height) for every camera unless ``camera_sizes`` overrides one.
    The third-person camera has the Bridge-v2 sensor: at 640x480 its intrinsics are exactly
    Bridge's (fx=fy=623.6, cx=319.5, cy=239.5); other sizes show the same field of view,
    scaled like Bridge's resized frames (see ``Twin.intrinsics``).
    ``render_quality`` "fast" renders without shadows or multisampling (about 3x faster on
    CPU rasterisers); "high" adds both, for videos. ``emoji_ids`` restricts the card pool
    (ids from ``python -m sim.list_emojis``); by default the pool is the whole ``split``.
    ``max_steps`` bounds an episode in control periods (the expert needs about 40-60).
    """

    robot: str = "widowx250"
    task: str = "grinning_face"
    n_cards: int = 4
    split: str = "train"
    emoji_ids: tuple[str, ...] | None = None
    cameras: tuple[str, ...] = CAMERAS
    image_size: tuple[int, int] = (224, 224)
    camera_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    control_rate_hz: float = 10.0
    timestep: float = 0.002
    max_steps: int = 120
    randomize_lighting: bool = True
    camera_jitter: bool = True
    render_quality: str = "fast"
    seed: int = 0
    layout_seed: int | None = None  # fix the card/cube layout of every episode (only the emojis change)

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"TwinConfig.robot={self.robot!r} is unknown; choose one of {ROBOTS}")
        if self.task not in TASKS:
            raise ValueError(f"TwinConfig.task={self.task!r} is unknown; choose one of {TASKS}")
        if self.split not in emoji_catalogue.SPLITS:
            raise ValueError(f"TwinConfig.split={self.split!r} is unknown; choose one of {emoji_catalogue.SPLITS}")
        if self.render_quality not in RENDER_QUALITIES:
            raise ValueError(f"TwinConfig.render_quality={self.render_quality!r} is unknown; choose one of {RENDER_QUALITIES}")
        if isinstance(self.cameras, str):
            self.cameras = (self.cameras,)
        self.cameras = tuple(self.cameras)
        for name in self.cameras:
            if name not in CAMERAS:
                raise ValueError(f"TwinConfig.cameras has unknown camera {name!r}; choose from {CAMERAS}")
        for name, size in {"image_size": self.image_size, **self.camera_sizes}.items():
            if name != "image_size" and name not in CAMERAS:
                raise ValueError(f"TwinConfig.camera_sizes has unknown camera {name!r}; choose from {CAMERAS}")
            if len(size) != 2 or not all(isinstance(v, int) and 16 <= v <= 2048 for v in size):
                raise ValueError(f"TwinConfig {name}={size!r}: expected (width, height) integers in [16, 2048]")
        if not (0 < self.control_rate_hz <= 1.0 / self.timestep):
            raise ValueError(
                f"TwinConfig.control_rate_hz={self.control_rate_hz} must be in (0, {1.0 / self.timestep:g}] "
                f"(one control period holds a whole number of {self.timestep} s physics steps)"
            )
        if self.max_steps < 1:
            raise ValueError(f"TwinConfig.max_steps={self.max_steps} must be >= 1")
        if self.emoji_ids is not None:
            self.emoji_ids = tuple(emoji_catalogue.get_emoji(e).id for e in self.emoji_ids)
            wrong = [e for e in self.emoji_ids if emoji_catalogue.get_emoji(e).split != self.split]
            if wrong:
                raise ValueError(f"TwinConfig.emoji_ids {wrong} are not in split {self.split!r}")
        if self.n_cards < 1:
            raise ValueError(f"TwinConfig.n_cards={self.n_cards} must be >= 1")
        if self.task == "grinning_face" and self.n_cards > len(self.emoji_pool):
            raise ValueError(
                f"TwinConfig.n_cards={self.n_cards} needs that many distinct emojis but the pool has "
                f"{len(self.emoji_pool)} ({self.split!r} split{' restricted by emoji_ids' if self.emoji_ids else ''})"
            )
        from sim.layout import max_cards

        capacity = max_cards(self.robot)
        if self.n_cards > capacity:
            raise ValueError(
                f"TwinConfig.n_cards={self.n_cards} cannot be laid out on the {self.robot} table: "
                f"at most {capacity} cards fit next to the cube without overlapping"
            )

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for dataset metadata); ``from_dict`` inverts it."""
        d = asdict(self)
        for key in ("cameras", "image_size", "emoji_ids"):
            if d[key] is not None:
                d[key] = list(d[key])
        d["camera_sizes"] = {k: list(v) for k, v in self.camera_sizes.items()}
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TwinConfig":
        unknown, allowed = unknown_fields(cls, data)
        if unknown:
            raise ValueError(f"TwinConfig: unknown keys {unknown}; allowed keys are {allowed}")
        d = dict(data)
        for key in ("cameras", "image_size", "emoji_ids"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if "camera_sizes" in d:
            d["camera_sizes"] = {k: tuple(v) for k, v in d["camera_sizes"].items()}
        return cls(**d)

    def scene(self) -> dict:
        """What a recorded store says about where its episodes come from (``schema.extra["scene"]``).

        A policy is evaluated and deployed on the scene it was trained on by default: the
        demo's 2-card fixed-layout bundle failed 4 of 4 episodes in the default 4-card,
        random-layout twin. ``split`` says which emojis the data shows; an evaluation still
        chooses the split it tests on. Lighting and camera jitter are randomised per episode.
        """
        return {"source": "twin", "robot": self.robot, "task": self.task, "n_cards": self.n_cards,
                "layout_seed": self.layout_seed, "split": self.split, "cameras": list(self.cameras),
                "image_size": list(self.image_size), "control_rate_hz": self.control_rate_hz}

    @property
    def emoji_pool(self) -> tuple[str, ...]:
        return self.emoji_ids if self.emoji_ids is not None else emoji_catalogue.split_ids(self.split)

    @property
    def substeps(self) -> int:
        return max(1, round(1.0 / (self.control_rate_hz * self.timestep)))

    def size_of(self, camera: str) -> tuple[int, int]:
        return tuple(self.camera_sizes.get(camera, self.image_size))
