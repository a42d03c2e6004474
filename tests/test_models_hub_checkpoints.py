"""Hub-format checkpoints (tests/hub_fixtures.py) load through the real `from_pretrained` path, report
what a camera frame costs in tokens, and a frame-inflating processor is refused unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hub_fixtures import WRITERS
from models_fixtures import robot_batch, toy_stats, write_store
from training.config import ConfigError, load_config
from training.trainer import build_model, check_prompt, resolve_model_config
from vla_robot.models.config import VLAConfig
from vla_robot.models.vla import VLAModel, prompt_report

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    dirs = {family: write(root / family) for family, write in WRITERS.items()}
    dirs["store"] = write_store(root / "s.zarr", lengths=(10, 10))
    return dirs


def _model(path, family: str, size: int, cameras=("front",)) -> VLAModel:
    cfg = VLAConfig(family=family, backbone=str(path), action_dim=7, horizon=4, state_dim=7, cameras=cameras,
                    image_size=size, num_action_queries=2, head_hidden=16, gripper_dims=(6,))
    torch.manual_seed(0)
    return VLAModel.from_pretrained_backbone(cfg, toy_stats())


@pytest.mark.parametrize("family,size,tokens,processor", [
    ("paligemma", 224, 256, "PaliGemmaProcessor"),  # SigLIP 224/14: 16 x 16 patches
    ("qwen2_5_vl", 224, 64, "Qwen2_5_VLProcessor"),  # 16 x 16 patches, 2 x 2 merged
    ("qwen2_5_vl", 448, 256, "Qwen2_5_VLProcessor"),
    ("idefics3", 384, 1377, "Idefics3Processor"),  # splitting: 4 x 4 tiles of the 1536 px upscale + 1 global, x 81
])
def test_hub_checkpoints_load_and_report_tokens_per_camera(hub, family, size, tokens, processor):
    model = _model(hub[family], family, size)
    assert type(model.processor).__name__ == processor  # the class the checkpoint's JSON names
    one = prompt_report(model)
    assert one["image_tokens_per_camera"] == tokens
    two = prompt_report(_model(hub[family], family, size, cameras=("front", "wrist")))
    assert two["image_tokens_per_camera"] == tokens and two["cameras"] == 2
    assert two["prompt_tokens"] >= one["prompt_tokens"] + tokens
    assert one["sequence_tokens"] == one["prompt_tokens"] + 2  # + the action queries


@pytest.mark.parametrize("family,size", [("paligemma", 224), ("qwen2_5_vl", 224), ("idefics3", 384)])
def test_a_training_step_runs_at_the_real_image_size(hub, family, size):
    """The tiny weights fit the real processor output (e.g. 256 image embeddings for 256 <image> tokens)."""
    model = _model(hub[family], family, size)
    if family == "idefics3":
        model.processor.image_processor.do_image_splitting = False
    model.train()
    loss = model.compute_loss(robot_batch(model))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.action_queries.grad is not None


def _smolvlm_cfg(hub, *extra):
    return load_config(CONFIGS / "cotrain_smolvlm.yaml", [f"data.stores=[{hub['store']}]",
                                                          f"model.backbone={hub['idefics3']}", *extra])


def test_image_splitting_is_flagged_and_the_shipped_config_turns_it_off(hub, tmp_path):
    from vla_robot.data.store import EpisodeStore

    schema = EpisodeStore.open(hub["store"]).schema
    shipped = _smolvlm_cfg(hub)
    assert shipped.model.image_processor == {"do_image_splitting": False}
    model = build_model(shipped, resolve_model_config(shipped, schema), toy_stats())
    assert check_prompt(shipped, model, print_fn=lambda *a: None)["image_tokens_per_camera"] == 81
    # the checkpoint's own setting (splitting on): 1377 tokens per frame, refused with the fix
    raw = _smolvlm_cfg(hub, "model.image_processor={}")
    model = build_model(raw, resolve_model_config(raw, schema), toy_stats())
    with pytest.raises(ConfigError, match="1377 tokens.*do_image_splitting: false"):
        check_prompt(raw, model, print_fn=lambda *a: None)
    allowed = _smolvlm_cfg(hub, "model.image_processor={}", "model.max_image_tokens=2000")
    assert check_prompt(allowed, model, print_fn=lambda *a: None)["image_tokens_per_camera"] == 1377
    bad = _smolvlm_cfg(hub, "model.image_processor={do_image_spliting: false}")
    with pytest.raises(ConfigError, match="has no setting 'do_image_spliting'.*do_image_splitting"):
        build_model(bad, resolve_model_config(bad, schema), toy_stats())


def test_processor_settings_travel_with_the_bundle(hub, tmp_path):
    from vla_robot.data.store import EpisodeStore
    from vla_robot.models.bundle import load_bundle, save_bundle

    cfg = _smolvlm_cfg(hub)
    model = build_model(cfg, resolve_model_config(cfg, EpisodeStore.open(hub["store"]).schema), toy_stats())
    loaded, _ = load_bundle(save_bundle(model, tmp_path / "bundle"))
    assert loaded.processor.image_processor.do_image_splitting is False
    assert prompt_report(loaded)["image_tokens_per_camera"] == 81


@pytest.mark.parametrize("name,family", [("lora_paligemma", "paligemma"), ("staged_paligemma", "paligemma")])
def test_shipped_paligemma_configs_stay_under_the_token_limit(hub, name, family):
    from vla_robot.data.store import EpisodeStore

    cfg = load_config(CONFIGS / f"{name}.yaml", [f"data.stores=[{hub['store']}]", f"model.backbone={hub[family]}",
                                                 f"strategy.stage1.stores=[{hub['store']}]"])
    model = build_model(cfg, resolve_model_config(cfg, EpisodeStore.open(hub["store"]).schema), toy_stats())
    report = check_prompt(cfg, model, print_fn=lambda *a: None)
    assert report["image_tokens_per_camera"] == 256 <= cfg.model.max_image_tokens
