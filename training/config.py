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
PRECISIONS = ("fp32", "bf16")
LORA_PARTS = ("llm", "vision")


class ConfigError(ValueError):
    """A training config problem, raised before any model is built or data is read."""


@dataclass
class StoreRef:
    """One episode store in a mixture; `weight` is its relative sampling probability."""

    url: str = ""
    weight: float = 1.0


@dataclass
class DataConfig:
    stores: list[StoreRef] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)  # empty: every camera of the first store
    val_fraction: float = 0.1
    split_seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    stats_path: str = ""  # JSON stats file; empty: computed from the training stores


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
    trust_remote_code: bool = False


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
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    vqa: VQAConfig = field(default_factory=VQAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 100
    grad_accum: int = 1
    precision: str = "fp32"
    seed: int = 0
    out_dir: str = "runs/vla"
    log_every: int = 10
    val_every: int = 50
    val_batches: int = 4
    ckpt_every: int = 50
    resume: bool = True  # continue from the newest checkpoint in out_dir when there is one
    merge_lora: bool = True  # bundle with LoRA merged (True) or base + adapter (False)
    wandb_project: str = ""
    stop_after: int = 0  # stop after this many optimizer steps of the current phase (simulates an interruption)

    def validate(self) -> None:
        s = self.strategy
        if s.name not in STRATEGIES:
            raise ConfigError(f"strategy.name {s.name!r} is unknown; allowed: {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")
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
        if self.model.target == "discrete" and s.name == "head_only":
            raise ConfigError("strategy head_only trains nothing with model.target discrete (the LM predicts "
                              "the action tokens); pick lora, full or freeze_vision")
        from vla_robot.models.config import FAMILIES, TARGETS

        if self.model.family not in FAMILIES:
            raise ConfigError(f"model.family {self.model.family!r} is unknown; allowed: {', '.join(FAMILIES)}")
        if self.model.target not in TARGETS:
            raise ConfigError(f"model.target {self.model.target!r} is unknown; allowed: {', '.join(TARGETS)}")
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
