"""Parameter-update strategies: which backbone weights train, and LoRA injection/merging.

The action queries and the head always train. Freezing is done with `requires_grad`
and only trainable parameters reach the optimizer, so frozen weights stay bit-identical.
"""

from __future__ import annotations

from torch import nn

from training.config import ConfigError, LoraSection
from vla_robot.models.vla import VLAModel, unwrap

# Module-name fragments of each part, across PaliGemma / Qwen2-VL / Idefics3.
VISION_KEYS = ("vision_tower", "visual", "vision_model")
CONNECTOR_KEYS = ("multi_modal_projector", "connector", "merger")
LLM_KEYS = ("language_model", "text_model", "lm_head")


def part_of(name: str) -> str:
    """'vision', 'connector' or 'llm' for a backbone parameter/module name."""
    parts = name.split(".")
    if any(k in parts for k in CONNECTOR_KEYS):
        return "connector"
    if any(k in parts for k in VISION_KEYS):
        return "vision"
    if any(k in parts for k in LLM_KEYS):
        return "llm"
    return "llm"


def lora_target_names(backbone: nn.Module, lora: LoraSection, where: str = "strategy.lora") -> list[str]:
    """Full names of the Linear modules LoRA will wrap; raise if a target matches nothing."""
    linear = [(n, m) for n, m in unwrap(backbone).named_modules() if isinstance(m, nn.Linear)]
    chosen = []
    for part in lora.apply_to:
        in_part = [n for n, _ in linear if part_of(n) == part and n.rsplit(".", 1)[-1] in lora.target_modules]
        if not in_part:
            available = sorted({n.rsplit(".", 1)[-1] for n, _ in linear if part_of(n) == part})
            raise ConfigError(f"{where}.target_modules {lora.target_modules} match no Linear module in the "
                              f"{part} part of this backbone; available there: {available}")
        chosen += in_part
    found = {n.rsplit(".", 1)[-1] for n in chosen}
    missing = [t for t in lora.target_modules if t not in found]
    if missing:
        available = sorted({n.rsplit(".", 1)[-1] for n, _ in linear})
        raise ConfigError(f"{where}.target_modules {missing} do not exist in this backbone "
                          f"(parts {lora.apply_to}); available Linear names: {available}")
    return chosen


def add_lora(model: VLAModel, lora: LoraSection, where: str = "strategy.lora") -> None:
    """Wrap the backbone with a fresh peft LoRA; base weights freeze, only the adapters train."""
    from peft import LoraConfig, get_peft_model

    targets = lora_target_names(model.backbone, lora, where)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    model.set_backbone(get_peft_model(unwrap(model.backbone), config))


def merge_lora(model: VLAModel) -> None:
    """Fold the LoRA update into the backbone weights and drop the adapter modules."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.set_backbone(model.backbone.merge_and_unload())


def apply_strategy(model: VLAModel, name: str, lora: LoraSection | None = None) -> None:
    """Set `requires_grad` for strategy `name` (staged: the LoRA of the current stage)."""
    backbone = model.backbone
    if name in ("lora", "staged"):
        add_lora(model, lora or LoraSection())
    else:
        for pname, p in unwrap(backbone).named_parameters():
            part = part_of(pname)
            trainable = {
                "full": True,
                "freeze_vision": part != "vision",
                "freeze_llm": part != "llm",
                "head_only": False,
            }.get(name)
            if trainable is None:
                raise ConfigError(f"unknown strategy {name!r}")
            p.requires_grad_(trainable)
    model.action_queries.requires_grad_(True)
    for p in list(model.head.parameters()):
        p.requires_grad_(True)


def describe(model: VLAModel) -> str:
    trainable, total = model.parameter_counts()
    return f"trainable params: {trainable:,} / {total:,} ({100.0 * trainable / max(total, 1):.2f}%)"


def enable_gradient_checkpointing(model: VLAModel) -> None:
    """Recompute each backbone layer's activations in backward instead of storing them.

    Non-reentrant checkpointing: it needs no input that requires grad, so it works with frozen
    embeddings (LoRA, freeze_*), and it keeps the query-injection hook on the embeddings intact.
    """
    backbone = unwrap(model.backbone)
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
