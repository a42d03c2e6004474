"""Cross-embodiment stage 1: SO-100 stores (from the lock-stepped sim collection) pretrain a WidowX policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models_fixtures import write_store
from training.config import ConfigError, load_config
from training.embodiment import EmbodimentMap, action_layout, state_layout
from training.trainer import prepare, train
from vla_robot.data.dataset import VLADataset
from vla_robot.data.store import EpisodeStore
from vla_robot.models.bundle import load_bundle
from vla_robot.models.normalization import Normalizer
from vla_robot.models.tiny import make_tiny_backbone


def collect(arm: str, out, episodes: int = 2) -> str:
    """`vla-robot collect --robot sim --arm ARM`: the real ROS collection stack, lock-stepped on the twin."""
    cmd = [sys.executable, "-m", "vla_robot.cli", "collect", "--robot", "sim", "--arm", arm, "--episodes", str(episodes),
           "--out", str(out), "--size", "32x32", "--max-steps", "12", "--cameras", "third_person", "--seed", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "MUJOCO_GL": "egl"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(out)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("xemb")
    return {"root": root, "so100": collect("so100", root / "so100.zarr"), "widowx": collect("widowx250", root / "wx.zarr"),
            "backbone": str(make_tiny_backbone("paligemma", root / "pg")),
            "front": write_store(root / "front.zarr", lengths=(10, 11))}


def _overrides(s, out, *extra):
    return [f"data.stores=[{s['widowx']}]", f"model.backbone={s['backbone']}", "model.image_size=32",
            "model.horizon=4", "model.num_action_queries=2", "model.head_hidden=16", "data.batch_size=4",
            "data.val_fraction=0", "strategy.name=staged", "strategy.lora.rank=2",
            "strategy.lora.target_modules=[q_proj,v_proj]", "strategy.stage1.lora.rank=2",
            "strategy.stage1.lora.target_modules=[q_proj,v_proj]", "strategy.stage1.steps=2", "steps=2",
            "ckpt_every=2", f"out_dir={out}", *extra]


def test_other_robots_are_normalised_with_their_own_statistics_and_padded(stores):
    so, wx = EpisodeStore.open(stores["so100"]), EpisodeStore.open(stores["widowx"])
    mapping = EmbodimentMap(so.schema, so.stats(), action_layout(wx.schema), state_layout(wx.schema), "so100", True)
    ds = VLADataset(stores["so100"], cameras=["third_person"], image_size=(32, 32), horizon=4, split="all")
    mapped = [mapping(ds[i]) for i in range(len(ds))]
    target = torch.stack([m["action_target"] for m in mapped])  # (N, H, 7)
    # SO-100: 5 arm joints + gripper → WidowX slots 0-4 and the gripper slot 6; slot 5 (wrist_rotate) masked
    assert mapped[0]["action_dim_mask"].tolist() == [True] * 5 + [False, True]
    assert mapped[0]["state_dim_mask"].tolist() == [True] * 5 + [False, True]
    assert torch.all(target[..., 5] == 0) and "action" not in mapped[0] and mapped[0]["state_norm"].shape == (7,)
    assert target[..., :5].abs().max() <= 1 and 0 <= target[..., 6].min() and target[..., 6].max() <= 1
    # the gripper column is SO-100's gripper, in its own [min, max] → [0, 1]
    raw_grip = torch.stack([ds[i]["action"][:, 5] for i in range(len(ds))])
    lo, hi = so.stats()["action"]["min"][5], so.stats()["action"]["max"][5]
    assert torch.allclose(target[..., 6], ((raw_grip - lo) / (hi - lo)).clamp(0, 1), atol=1e-5)
    # with the WidowX statistics (what stage 1 used before) most SO-100 arm targets were clipped to the bounds
    raw = torch.stack([ds[i]["action"] for i in range(len(ds))])
    as_widowx = torch.zeros(*raw.shape[:-1], 7)
    as_widowx[..., :5], as_widowx[..., 6] = raw[..., :5], raw[..., 5]
    clipped_before = float((Normalizer(wx.stats(), 7, 7, (6,)).normalise_action(as_widowx)[..., :5].abs() >= 0.999)
                           .float().mean())
    clipped_now = float((target[..., :5].abs() >= 0.999).float().mean())
    assert clipped_now < clipped_before - 0.2, (clipped_now, clipped_before)


def test_masked_dims_do_not_count_in_the_loss(stores):
    from training.data import RobotCollator
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.vla import VLAModel

    so, wx = EpisodeStore.open(stores["so100"]), EpisodeStore.open(stores["widowx"])
    mapping = EmbodimentMap(so.schema, so.stats(), action_layout(wx.schema), state_layout(wx.schema), "so100", True)
    cfg = VLAConfig(family="paligemma", backbone=stores["backbone"], action_dim=7, horizon=4, state_dim=7,
                    cameras=("third_person",), image_size=32, num_action_queries=2, head_hidden=16, gripper_dims=(6,))
    model = VLAModel.from_pretrained_backbone(cfg, wx.stats())
    ds = VLADataset(stores["so100"], cameras=["third_person"], image_size=(32, 32), horizon=4, split="all")
    batch = RobotCollator(model.preprocessor, use_state=True)([mapping(ds[i]) for i in range(4)])
    terms = model.loss_terms(batch)
    valid = int((~batch["action_is_pad"]).sum())
    assert int(terms["arm_loss"].count) == valid * 5  # not 6: wrist_rotate does not exist on an SO-100
    assert int(terms["gripper_loss"].count) == valid
    # a prediction error in the masked dim costs nothing: the loss has no gradient towards it
    before = float(terms["arm_loss"].mean)
    batch["action_target"][..., 5] = 1.0
    assert float(model.loss_terms(batch)["arm_loss"].mean) == pytest.approx(before, abs=1e-6)


def test_so100_stage1_then_widowx_stage2_trains_a_widowx_bundle(stores, tmp_path):
    out = tmp_path / "xemb"
    bundle = train(load_config(None, _overrides(stores, out, f"strategy.stage1.stores=[{stores['so100']}]",
                                                "data.cameras=[third_person]")))
    model, info = load_bundle(bundle)
    assert info.action_dim == 7 and info.action_space["robot"] == "widowx250"
    rows = [json.loads(x) for x in (out / "stage1" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    assert set(rows[0]) >= {"arm_loss", "gripper_loss"}
    # a store whose cameras are named differently joins the mixture through StoreRef.cameras
    mixture = (f"strategy.stage1.stores=[{{url: {stores['so100']}}}, "
               f"{{url: {stores['front']}, weight: 0.5, cameras: [front]}}]")
    cfg = load_config(None, _overrides(stores, tmp_path / "named", mixture, "data.cameras=[third_person]"))
    assert cfg.strategy.stage1.stores[1].cameras == ["front"]
    prepare(cfg)  # checks and maps every stage-1 store without training


def test_mismatches_fail_with_what_to_do(stores, tmp_path):
    # the WidowX (6 arm joints) cannot pretrain an SO-100 head (5)
    with pytest.raises(ConfigError, match="6 arm \\+ 1 gripper dims, the target robot's 5 \\+ 1"):
        prepare(load_config(None, _overrides(stores, tmp_path, f"data.stores=[{stores['so100']}]",
                                             f"strategy.stage1.stores=[{stores['widowx']}]",
                                             "data.cameras=[third_person]")))
    # a camera the store does not have: named, with the StoreRef.cameras fix
    with pytest.raises(ConfigError, match="cameras \\['third_person'\\] not in .*front.zarr.*stores\\[0\\].cameras"):
        prepare(load_config(None, _overrides(stores, tmp_path, f"strategy.stage1.stores=[{stores['front']}]",
                                             "data.cameras=[third_person]")))
    # end-effector actions cannot share a head with joint positions
    import dataclasses

    from vla_robot.data.synthetic import demo_schema, write_demo_episodes

    schema = demo_schema(width=32, height=32, cameras=("front",), depth=False)
    ee = EpisodeStore.create(str(tmp_path / "ee.zarr"), dataclasses.replace(
        schema, action_space={"type": "ee_delta", "frame": "base"}))
    write_demo_episodes(ee, [10])
    ee.close()
    with pytest.raises(ConfigError, match="its actions are 'ee_delta', the target robot's 'joint_position'"):
        prepare(load_config(None, _overrides(stores, tmp_path, "data.cameras=[third_person]",
                                             f"strategy.stage1.stores=[{{url: {tmp_path / 'ee.zarr'}, "
                                             "cameras: [front]}]")))
    # target stores of different robots are refused: other robots belong in stage 1
    with pytest.raises(ConfigError, match="other robots belong in strategy.stage1.stores"):
        prepare(load_config(None, _overrides(stores, tmp_path, f"data.stores=[{stores['widowx']},{stores['so100']}]",
                                             "data.cameras=[third_person]", "strategy.name=lora")))
