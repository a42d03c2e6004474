"""Typed training configuration, validated at load, with dotted command-line overrides.

    cfg = load_config("configs/lora.yaml", ["optim.lr_head=3e-4", "strategy.lora.rank=16"])

Every field has a default except the stores and the backbone; unknown keys and bad
values raise `ConfigError` naming the key and the allowed values, before any compute.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from vla_robot.config_utils import unknown_fields

VQA_QUESTION_SETS = ("all", "scene", "grounding")  # kinds of twin VQA pairs (training/vqa.py scene_questions)
STRATEGIES = ("full", "lora", "freeze_vision", "freeze_llm", "head_only", "staged")
PRECISIONS = ("fp32", "bf16", "bf16_pure")
# bf16_pure stores the frozen backbone in bf16 (memory); only strategies whose trained weights
# are all float32 adapters/heads may use it: a bf16 weight rounds a 1e-4 update away.
PURE_BF16_STRATEGIES = ("lora", "head_only")
LORA_PARTS = ("llm", "vision")
SHARDING = ("none", "fsdp")
# Settings that never change the optimisation: a resumed run may differ in them silently.
RESUME_FREE_KEYS = ("out_dir", "resume", "resume_apply", "log_every", "val_every", "val_batches", "ckpt_every",
                    "keep_checkpoints", "stop_after", "wandb_project", "merge_lora", "data.num_workers",
                    "distributed.reshard_after_forward")
# Settings a resumed run can never change: they decide which tensors exist and train.
RESUME_FIXED_PREFIXES = ("model.", "strategy.", "distributed.")


class ConfigError(ValueError):
    """A training config problem, raised before any model is built or data is read."""


@dataclass
class StoreRef:
    """One episode store in a mixture; `weight` is its relative sampling probability.

    `cameras` names this store's cameras in the model's camera order, for a store (often
    another robot's, in a stage-1 mixture) whose cameras are named differently; empty: the
    same names as the model's.
    """

    url: str = ""
    weight: float = 1.0
    cameras: list[str] = field(default_factory=list)


@dataclass
class AugmentSection:
    """Training-time image augmentation, as OpenVLA-OFT and openpi train (off by default).

    A random crop of `crop_scale` of the image area (aspect kept) resized back, then colour
    jitter: brightness, contrast and saturation factors drawn from [1 - x, 1 + x] and a hue
    shift of up to `hue` of a turn. Validation and deployment see no jitter and the centre
    crop of the same area (the bundle records `crop_scale`), so train and test frames show
    objects at the same scale. Each sample's draw is a function of (seed, its position in
    the sample stream): the same on any number of processes and workers, and on resume.
    """

    enabled: bool = False
    crop_scale: float = 0.9
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05


@dataclass
class DataConfig:
    stores: list[StoreRef] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)  # empty: every camera of the first store
    val_fraction: float = 0.1
    split_seed: int = 0
    batch_size: int = 8  # per process: the global batch is batch_size x processes (x grad_accum per step)
    num_workers: int = 0
    stats_path: str = ""  # JSON stats file; empty: computed from the training stores
    augment: AugmentSection = field(default_factory=AugmentSection)


@dataclass
class ModelSection:
    """The architecture; action/state dims come from the store schema."""

    family: str = "paligemma"
    backbone: str = ""
    horizon: int = 8
    num_action_queries: int = 8
    head_hidden: int = 256
    head_layers: int = 2
    image_size: int = 224
    target: str = "continuous"
    use_proprio: bool = True
    gripper_dims: list[int] | None = None  # None: action names containing "gripper"
    num_bins: int = 256
    goal_loss_weight: float = 0.0  # > 0: the head predicts the episode's final state and acts on it (models/head.py)
    # "append" / "only": the instruction's target is asked about in the prior's own words, "where is the X?",
    # after the instruction or instead of it (models/grounding.py); "off": the instruction as recorded
    grounding_question: str = "off"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False  # recompute the backbone's layer activations in backward (memory for time)
    # Overrides of the checkpoint's image processor settings, saved with the bundle's processor,
    # e.g. {do_image_splitting: false} for SmolVLM or {max_pixels: 200704} for Qwen2.5-VL.
    image_processor: dict = field(default_factory=dict)
    max_image_tokens: int = 512  # refuse a processor that turns one camera frame into more tokens (0: no limit)


@dataclass
class LoraSection:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    apply_to: list[str] = field(default_factory=lambda: ["llm"])  # llm and/or vision


@dataclass
class Stage1Section:
    """Staged recipe, stage 1: LoRA on a robot-data mixture, then merged into the backbone."""

    stores: list[StoreRef] = field(default_factory=list)
    steps: int = 100
    checkpoint: str = ""  # start stage 2 from this stage-1 checkpoint dir instead of training stage 1
    lora: LoraSection = field(default_factory=LoraSection)


@dataclass
class StrategyConfig:
    name: str = "lora"
    lora: LoraSection = field(default_factory=LoraSection)
    stage1: Stage1Section = field(default_factory=Stage1Section)


@dataclass
class VQAConfig:
    """Co-training with (image, question, answer) batches under the LM loss."""

    ratio: float = 0.0  # fraction of micro-batches that are VQA; 0 disables
    source: str = "twin"  # twin: embodied VQA generated from the MuJoCo twin; or a .jsonl path
    num_samples: int = 256
    seed: int = 0
    robot: str = "widowx250"
    n_cards: int = 0  # twin scenes: cards on the table (0: the twin's default)
    layout_seed: int = -1  # twin scenes: fixed card/cube layout, as the robot data's (-1: random layouts)
    questions: str = "all"  # twin scenes: all | scene (what is on the table) | grounding (instruction → card side)


@dataclass
class OptimConfig:
    lr_head: float = 1e-3
    lr_backbone: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class DistributedSection:
    """How a multi-process run splits the model (processes come from `accelerate launch` / torchrun).

    `sharding=none`: DDP, a full replica per process. `sharding=fsdp`: FSDP2 (`fully_shard`)
    over the backbone's layers, sharded checkpoints that every process writes. An accelerate
    config with `distributed_type: FSDP` selects fsdp as well.
    """

    sharding: str = "none"
    reshard_after_forward: bool = True  # FSDP: free gathered layer weights after forward (memory) or keep them (speed)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    vqa: VQAConfig = field(default_factory=VQAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    steps: int = 100
    grad_accum: int = 1
    precision: str = "fp32"
    seed: int = 0
    out_dir: str = "runs/vla"
    log_every: int = 10
    val_every: int = 50
    val_batches: int = 4
    ckpt_every: int = 50
    keep_checkpoints: int = 3  # keep the newest K checkpoints of each phase (0: keep all)
    resume: bool = True  # continue from the newest checkpoint in out_dir when there is one
    # Dotted keys that may differ from the checkpoint's config on resume, applied from then on
    # (e.g. [optim.lr_head, steps]); any other difference is refused.
    resume_apply: list[str] = field(default_factory=list)
    merge_lora: bool = True  # bundle with LoRA merged (True) or base + adapter (False)
    wandb_project: str = ""
    stop_after: int = 0  # stop after this many optimizer steps of the current phase (simulates an interruption)

    def validate(self) -> None:
        s = self.strategy
        if s.name not in STRATEGIES:
            raise ConfigError(f"strategy.name {s.name!r} is unknown; allowed: {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")
        if self.precision == "bf16_pure" and s.name not in PURE_BF16_STRATEGIES:
            raise ConfigError(f"precision bf16_pure stores the backbone in bf16, where AdamW rounds small updates "
                              f"away; strategy {s.name!r} trains backbone weights (or merges stage-1 LoRA into them). "
                              f"Use precision=bf16 (float32 master weights, bf16 autocast); bf16_pure is for "
                              f"{' and '.join(PURE_BF16_STRATEGIES)} only")
        if self.distributed.sharding not in SHARDING:
            raise ConfigError(f"distributed.sharding {self.distributed.sharding!r} is unknown; "
                              f"allowed: {', '.join(SHARDING)}")
        fixed = [k for k in self.resume_apply if k.startswith(RESUME_FIXED_PREFIXES) or k in ("model", "strategy",
                                                                                             "distributed")]
        if fixed:
            raise ConfigError(f"resume_apply {fixed}: model, strategy and distributed settings decide which tensors "
                              "exist and cannot change on resume; start a new out_dir")
        if self.keep_checkpoints < 0:
            raise ConfigError(f"keep_checkpoints must be >= 0 (0 keeps all), got {self.keep_checkpoints}")
        aug = self.data.augment
        if not 0 < aug.crop_scale <= 1:
            raise ConfigError(f"data.augment.crop_scale must be in (0, 1] (fraction of the image area), got {aug.crop_scale}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(aug, name) < 1:
                raise ConfigError(f"data.augment.{name} must be in [0, 1), got {getattr(aug, name)}")
        if not 0 <= aug.hue <= 0.5:
            raise ConfigError(f"data.augment.hue must be in [0, 0.5] (fraction of a turn), got {aug.hue}")
        if self.model.max_image_tokens < 0:
            raise ConfigError(f"model.max_image_tokens must be >= 0 (0: no limit), got {self.model.max_image_tokens}")
        if not self.data.stores:
            raise ConfigError("data.stores is empty: list at least one episode store (url)")
        for where, stores in (("data.stores", self.data.stores), ("strategy.stage1.stores", s.stage1.stores)):
            for i, st in enumerate(stores):
                if not st.url:
                    raise ConfigError(f"{where}[{i}].url is empty")
                if st.weight <= 0:
                    raise ConfigError(f"{where}[{i}].weight must be > 0, got {st.weight}")
        if s.name == "staged" and not s.stage1.stores and not s.stage1.checkpoint:
            raise ConfigError("strategy staged needs strategy.stage1.stores (the pretraining mixture) "
                              "or strategy.stage1.checkpoint")
        for where, lora in (("strategy.lora", s.lora), ("strategy.stage1.lora", s.stage1.lora)):
            bad = [p for p in lora.apply_to if p not in LORA_PARTS]
            if bad or not lora.apply_to:
                raise ConfigError(f"{where}.apply_to {lora.apply_to} is invalid; allowed: {list(LORA_PARTS)}")
            if lora.rank <= 0 or not lora.target_modules:
                raise ConfigError(f"{where}: rank must be > 0 and target_modules non-empty")
            if not 0 <= lora.dropout < 1:
                raise ConfigError(f"{where}.dropout must be in [0, 1), got {lora.dropout}")
        if not self.model.backbone:
            raise ConfigError("model.backbone is empty: give a hub id or a local directory")
        for name in ("steps", "grad_accum", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.data.batch_size <= 0:
            raise ConfigError(f"data.batch_size must be > 0, got {self.data.batch_size}")
        if not 0 <= self.vqa.ratio < 1:
            raise ConfigError(f"vqa.ratio must be in [0, 1), got {self.vqa.ratio}")
        if self.vqa.questions not in VQA_QUESTION_SETS:
            raise ConfigError(f"vqa.questions {self.vqa.questions!r} is unknown; allowed: {', '.join(VQA_QUESTION_SETS)}")
        if self.vqa.n_cards < 0 or self.vqa.n_cards == 1:
            raise ConfigError(f"vqa.n_cards must be 0 (the twin's default) or >= 2, got {self.vqa.n_cards}")
        if self.vqa.ratio > 0 and s.name == "head_only":
            raise ConfigError("vqa.ratio > 0 with strategy head_only: VQA batches train the backbone under the LM "
                              "loss, and head_only freezes all of it; set vqa.ratio=0 or pick lora")
        if self.model.target == "discrete" and s.name == "head_only":
            raise ConfigError("strategy head_only trains nothing with model.target discrete (the LM predicts "
                              "the action tokens); pick lora, full or freeze_vision")
        from vla_robot.models.config import FAMILIES, TARGETS
        from vla_robot.models.grounding import GROUNDING_MODES

        if self.model.family not in FAMILIES:
            raise ConfigError(f"model.family {self.model.family!r} is unknown; allowed: {', '.join(FAMILIES)}")
        if self.model.target not in TARGETS:
            raise ConfigError(f"model.target {self.model.target!r} is unknown; allowed: {', '.join(TARGETS)}")
        if self.model.grounding_question not in GROUNDING_MODES:
            raise ConfigError(f"model.grounding_question {self.model.grounding_question!r} is unknown; allowed: "
                              f"{', '.join(GROUNDING_MODES)} (append / only ask \"where is the X?\" for the target)")
        if self.model.goal_loss_weight < 0:
            raise ConfigError(f"model.goal_loss_weight must be >= 0 (0 turns goal prediction off), "
                              f"got {self.model.goal_loss_weight}")
        if self.model.goal_loss_weight > 0 and (self.model.target != "continuous" or not self.model.use_proprio):
            raise ConfigError("model.goal_loss_weight > 0 needs model.target continuous and model.use_proprio true: "
                              "the head predicts the robot state the episode ends in")

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, data: Any, where: str):
    """Recursively build dataclass `cls` from plain data, rejecting unknown keys."""
    if not is_dataclass(cls):
        return data
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    unknown, allowed = unknown_fields(cls, data)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{where}.{k}'.lstrip('.') for k in unknown]}; allowed: {allowed}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}".lstrip("."))
    return cls(**kwargs)


def _coerce(tp, value, where: str):
    origin = get_origin(tp)
    args = [a for a in get_args(tp) if a is not type(None)]
    if value is None:
        return None
    if is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if args and origin is not None:  # Optional[X] / X | None
        return _coerce(args[0], value, where)
    try:
        if tp is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if tp in (int, float, str):
            return tp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {tp.__name__}") from exc
    return value


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> TrainConfig:
    """YAML/JSON file (or `base` dict) + dotted overrides → a validated `TrainConfig`."""
    data: dict = dict(base or {})
    if path:
        text = Path(path).read_text()
        loaded = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        data = loaded or {}
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    for section in ("data", "strategy"):
        _stores_from_strings(data.get(section, {}) if section == "data" else data.get("strategy", {}).get("stage1", {}))
    cfg = _build(TrainConfig, data, "")
    cfg.validate()
    return cfg


def _stores_from_strings(section: dict) -> None:
    """Allow `stores: [path, path]` and `stores=a.zarr:0.7,b.zarr:0.3` as shorthands."""
    stores = section.get("stores") if isinstance(section, dict) else None
    if stores is None:
        return
    if isinstance(stores, str):
        stores = stores.split(",")
    out = []
    for s in stores:
        if isinstance(s, str):
            url, _, weight = s.rpartition(":") if s.rsplit(":", 1)[-1].replace(".", "", 1).isdigit() else (s, "", "")
            out.append({"url": url or s, "weight": float(weight) if weight else 1.0})
        else:
            out.append(s)
    section["stores"] = out


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (name.endswith("image_processor")):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = _plain(value)
    return out


def resume_changes(saved: dict, cfg: TrainConfig) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """Compare a checkpoint's config with this run's → (refused, applied) lists of (key, old, new).

    Keys in `RESUME_FREE_KEYS` may differ freely (logging, checkpoint cadence, workers). A key
    listed in `cfg.resume_apply` (or under a listed section, e.g. `optim`) is applied; keys
    under `RESUME_FIXED_PREFIXES` decide which tensors exist and can never change."""
    old, new = _flatten(saved), _flatten(cfg.to_dict())
    refused, applied = [], []
    for key in sorted(set(old) | set(new)):
        if key in RESUME_FREE_KEYS or old.get(key) == new.get(key):
            continue
        change = (key, old.get(key), new.get(key))
        listed = any(key == k or key.startswith(k + ".") for k in cfg.resume_apply)
        if listed and not key.startswith(RESUME_FIXED_PREFIXES):
            applied.append(change)
        else:
            refused.append(change)
    return refused, applied
