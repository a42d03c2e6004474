"""Policy bundle: the one directory a runtime needs to run a trained VLA (safetensors + JSON only).

Layout::

    bundle.json           format/version, action space, cameras, image size, dims, weights kind, provenance,
                          scene (where the training episodes were recorded: the twin's cards, layout, ...)
    vla_config.json       VLAConfig (architecture + target)
    normalization.json    the statistics the normaliser was built from
    head.safetensors      action queries, action head, normaliser buffers (float32)
    backbone/             transformers config.json + model.safetensors (LoRA merged, or the base)
    adapter/              peft adapter_config.json + adapter_model.safetensors (only when not merged)
    processor/            tokenizer + image processor files of the family
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vla_robot.models.config import VLAConfig
from vla_robot.models.normalization import Normalizer
from vla_robot.models.processors import load_processor, save_processor
from vla_robot.models.vla import VLAModel, unwrap

BUNDLE_FORMAT = "vla-robot-policy"
BUNDLE_VERSION = 1


@dataclass
class BundleInfo:
    """What a runtime needs besides the model: shapes, cameras, action space and where it came from."""

    path: Path
    config: VLAConfig
    cameras: tuple[str, ...]
    image_size: int
    state_dim: int
    action_dim: int
    horizon: int
    action_space: dict
    weights: str
    stats: dict
    provenance: dict = field(default_factory=dict)
    scene: dict | None = None  # the training stores' scene (schema.extra["scene"]); None when unknown or mixed


def is_peft(backbone) -> bool:
    return hasattr(backbone, "merge_and_unload") and hasattr(backbone, "peft_config")


def save_bundle(model: VLAModel, out_dir: str | Path, action_space: dict | None = None,
                provenance: dict | None = None, merge: bool = True, scene: dict | None = None) -> Path:
    """Write `model` as a policy bundle. With a LoRA backbone, `merge=True` merges it in place first;
    `merge=False` stores the unmerged base plus the adapter. `scene` is where the training
    episodes were recorded; `vla-robot eval`/`deploy` in the twin default to it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone = model.backbone
    weights = "merged"
    if is_peft(backbone):
        if merge:
            model.set_backbone(backbone.merge_and_unload())
        else:
            weights = "adapter"
            backbone.save_pretrained(out / "adapter")
    unwrap(model.backbone).save_pretrained(out / "backbone") if weights == "merged" else \
        backbone.get_base_model().save_pretrained(out / "backbone", state_dict=_base_state_dict(backbone))
    save_processor(model.processor, out / "processor")
    head = {k: v.detach().float().contiguous().cpu() for k, v in model.head_state_dict().items()}
    save_file(head, str(out / "head.safetensors"))
    cfg = model.config.to_dict()
    cfg["backbone"] = "backbone"
    _write_json(out / "vla_config.json", cfg)
    _write_json(out / "normalization.json", model.normalizer.stats)
    _write_json(out / "bundle.json", {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "cameras": list(model.config.cameras),
        "image_size": model.config.image_size,
        "state_dim": model.config.state_dim,
        "action_dim": model.config.action_dim,
        "horizon": model.config.horizon,
        "action_space": action_space or {},
        "weights": weights,
        "original_backbone": model.config.backbone,
        "provenance": {"created_unix": time.time(), **(provenance or {})},
        **({"scene": scene} if scene else {}),
    })
    return out


def _base_state_dict(peft_backbone) -> dict[str, torch.Tensor]:
    """Base weights without LoRA tensors, under the names the plain model uses."""
    base = peft_backbone.get_base_model()
    out = {}
    for name, tensor in base.state_dict().items():
        if "lora_" in name:
            continue
        out[name.replace(".base_layer.", ".")] = tensor
    return out


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable))


def _jsonable(value):
    if isinstance(value, (tuple, set)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a bundle JSON file")


def load_bundle(path: str | Path, device: str | torch.device = "cpu",
                dtype: torch.dtype | None = None) -> tuple[VLAModel, BundleInfo]:
    """Load a bundle → (model in eval mode on `device`, BundleInfo). `dtype` applies to the backbone only;
    the queries, head and normaliser stay float32."""
    from transformers import AutoModelForImageTextToText

    root = Path(path)
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{root} is not a policy bundle (no bundle.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
        raise ValueError(f"{root}: unsupported bundle format {meta.get('format')!r} v{meta.get('version')}")
    cfg_dict = json.loads((root / "vla_config.json").read_text())
    cfg_dict["backbone"] = str(root / "backbone")
    config = VLAConfig.from_dict(cfg_dict)
    stats = json.loads((root / "normalization.json").read_text())
    backbone = AutoModelForImageTextToText.from_pretrained(root / "backbone", dtype=dtype,
                                                           trust_remote_code=config.trust_remote_code)
    if meta["weights"] == "adapter":
        from peft import PeftModel

        backbone = PeftModel.from_pretrained(backbone, root / "adapter")
    processor = load_processor(config.family, root / "processor", config.trust_remote_code)
    model = VLAModel(config, backbone, processor,
                     Normalizer(stats, config.action_dim, config.state_dim, config.gripper_dims))
    head = load_file(str(root / "head.safetensors"))
    missing = set(model.head_state_dict()) - set(head)
    if missing:
        raise ValueError(f"{root}/head.safetensors lacks {sorted(missing)}")
    model.load_state_dict(head, strict=False)
    model.to(device).eval()
    info = BundleInfo(path=root, config=config, cameras=tuple(meta["cameras"]), image_size=int(meta["image_size"]),
                      state_dim=int(meta["state_dim"]), action_dim=int(meta["action_dim"]),
                      horizon=int(meta["horizon"]), action_space=meta.get("action_space", {}),
                      weights=meta["weights"], stats=stats, provenance=meta.get("provenance", {}),
                      scene=meta.get("scene"))
    return model, info
