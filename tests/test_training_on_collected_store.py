"""`vla-train` runs every strategy end to end on a store recorded by the ROS 2 collection stack.

The store is recorded through the composed ROS nodes (`vla-robot collect --robot sim`),
not written directly, so this is the path an engineer takes with operator-collected data.
"""

from __future__ import annotations

import pytest

from training.cli import main as vla_train
from vla_robot.cli import main as vla_robot
from vla_robot.data.store import EpisodeStore
from vla_robot.models.bundle import load_bundle
from vla_robot.models.tiny import make_tiny_backbone

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("collected")
    target = root / "emoji.zarr"
    pretrain = root / "reach.zarr"
    common = ["--robot", "sim", "--episodes", "2", "--size", "32x32", "--cameras", "third_person",
              "--max-steps", "30", "--speed", "4"]
    assert vla_robot(["collect", *common, "--out", str(target)]) == 0
    assert vla_robot(["collect", *common, "--task", "reach", "--seed", "5", "--out", str(pretrain)]) == 0
    with EpisodeStore.open(str(target)) as store:
        assert store.num_episodes == 2
    return {"target": str(target), "pretrain": str(pretrain),
            "backbone": str(make_tiny_backbone("paligemma", root / "pg"))}


def _args(c, out, *extra):
    return [f"data.stores=[{c['target']}]", f"model.backbone={c['backbone']}", "data.cameras=[third_person]",
            "model.image_size=32", "model.horizon=4", "model.num_action_queries=4", "model.head_hidden=32",
            "data.batch_size=4", "strategy.lora.rank=4", "strategy.lora.target_modules=[q_proj,v_proj]",
            "optim.warmup_steps=1", "val_every=2", "ckpt_every=2", "log_every=1", "steps=2", f"out_dir={out}", *extra]


STRATEGIES = {
    "full": [],
    "lora": [],
    "freeze_vision": [],
    "freeze_llm": [],
    "head_only": [],
    "staged": ["strategy.stage1.steps=2", "strategy.stage1.lora.rank=4",
               "strategy.stage1.lora.target_modules=[q_proj,v_proj]"],
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_trains_on_a_ros_collected_store(collected, tmp_path, strategy):
    extra = list(STRATEGIES[strategy])
    if strategy == "staged":
        extra.append(f"strategy.stage1.stores=[{collected['pretrain']}:1.0]")
    out = tmp_path / strategy
    assert vla_train(_args(collected, out, f"strategy.name={strategy}", *extra)) == 0
    model, info = load_bundle(out / "bundle")
    assert list(info.cameras) == ["third_person"]
    assert info.provenance["train_config"]["strategy"]["name"] == strategy
    assert info.provenance["stores"][0]["url"] == collected["target"]
    assert info.provenance["stores"][0]["episodes"] == 2
    with EpisodeStore.open(collected["target"]) as store:
        recorded = store.schema.extra["scene"]
    # the scene the store was recorded in travels into the bundle: eval and deploy default to it
    assert info.scene == recorded and recorded["n_cards"] == 4 and recorded["image_size"] == [32, 32]


def test_stores_from_different_scenes_give_a_bundle_without_one():
    from training.trainer import training_scene

    class Store:
        def __init__(self, scene):
            self.schema = type("Schema", (), {"extra": {"scene": scene} if scene else {}})()

    two = {"n_cards": 2, "layout_seed": 2}
    assert training_scene([Store(two), Store(dict(two))]) == two
    assert training_scene([Store(two), Store({"n_cards": 4, "layout_seed": None})]) is None
    assert training_scene([Store(two), Store(None)]) is None
