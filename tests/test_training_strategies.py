"""Update strategies: forward/backward per strategy and family, and proofs that freezing is real."""

from __future__ import annotations

import pytest
import torch

from models_fixtures import robot_batch, tiny_vla
from training.config import ConfigError, LoraSection, OptimConfig
from training.schedule import build_optimizer
from training.strategies import apply_strategy, merge_lora, part_of
from vla_robot.models.tiny import FAMILIES, make_tiny_backbone
from vla_robot.models.vla import unwrap

STRATEGIES = ("full", "lora", "freeze_vision", "freeze_llm", "head_only")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {f: make_tiny_backbone(f, root / f) for f in FAMILIES}


def _lora(apply_to=("llm",)):
    return LoraSection(rank=4, alpha=8, target_modules=["q_proj", "v_proj"], apply_to=list(apply_to))


def _steps(model, n=2, seed=0):
    opt = build_optimizer(model, OptimConfig(lr_head=1e-2, lr_backbone=1e-2, weight_decay=0.1))
    for i in range(n):
        loss = model.compute_loss(robot_batch(model, seed=seed + i))["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad()
    return loss


def _snapshot(model):
    return {n: p.detach().clone() for n, p in unwrap(model.backbone).named_parameters()}


@pytest.mark.parametrize("family,strategy", [(f, s) for f in FAMILIES for s in STRATEGIES
                                             if f == "paligemma" or s in ("lora", "freeze_vision")])
def test_each_strategy_trains_only_its_parameters(backbones, family, strategy):
    model = tiny_vla(backbones[family], family)
    apply_strategy(model, strategy, _lora())
    before = _snapshot(model)
    trainable_names = {n for n, p in unwrap(model.backbone).named_parameters() if p.requires_grad}
    head_before = model.head.mlp[-1].weight.detach().clone()
    loss = _steps(model)
    assert torch.isfinite(loss)
    after = dict(unwrap(model.backbone).named_parameters())
    for name, old in before.items():
        same = torch.equal(old, after[name].detach())
        if name not in trainable_names:
            assert same, f"{strategy}: frozen {name} changed"
    changed = {n for n in trainable_names if not torch.equal(before[n], after[n].detach())}
    assert not torch.equal(head_before, model.head.mlp[-1].weight), "the head must always train"
    expect = {
        "full": lambda n: True, "head_only": lambda n: False,
        "freeze_vision": lambda n: part_of(n) != "vision", "freeze_llm": lambda n: part_of(n) != "llm",
        "lora": lambda n: "lora_" in n,
    }[strategy]
    assert all(expect(n) for n in trainable_names)
    if strategy != "head_only":
        assert changed, f"{strategy}: no backbone weight moved"
    else:
        assert not trainable_names
    trainable, total = model.parameter_counts()
    assert 0 < trainable <= total


def test_lora_leaves_base_weights_untouched_until_merge(backbones):
    model = tiny_vla(backbones["paligemma"], "paligemma")
    base = {n.replace(".base_layer", ""): p.detach().clone() for n, p in unwrap(model.backbone).named_parameters()}
    apply_strategy(model, "lora", _lora(("llm", "vision")))
    _steps(model, n=3)
    for name, p in unwrap(model.backbone).named_parameters():
        if "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p.detach(), base[key]), f"LoRA changed base weight {name}"
    assert any(part_of(n) == "vision" for n, p in unwrap(model.backbone).named_parameters() if "lora_" in n)
    model.eval()
    b = robot_batch(model)
    with torch.no_grad():
        before = model.predict_action(b["images"], b["instructions"], b["state"])
    merge_lora(model)
    merged = dict(unwrap(model.backbone).named_parameters())
    assert not any("lora_" in n for n in merged)
    changed = [n for n, p in merged.items() if not torch.equal(p.detach(), base[n])]
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)
    with torch.no_grad():
        after = model.predict_action(b["images"], b["instructions"], b["state"])
    assert torch.allclose(before, after, atol=1e-5)


def test_lora_target_that_does_not_exist_is_rejected(backbones):
    model = tiny_vla(backbones["paligemma"], "paligemma")
    with pytest.raises(ConfigError, match="do not exist.*available Linear names"):
        apply_strategy(model, "lora", LoraSection(target_modules=["q_proj", "query_key_value"]))
    with pytest.raises(ConfigError, match="vision part"):
        apply_strategy(model, "lora", LoraSection(target_modules=["o_proj"], apply_to=["vision"]))
