"""VLA model: every backbone family forward/backward, targets, normalisation, bundle round trips."""

from __future__ import annotations

import json

import pytest
import torch

from models_fixtures import A, H, S, robot_batch, tiny_vla, toy_stats
from vla_robot.models.bundle import load_bundle, save_bundle
from vla_robot.models.config import VLAConfig
from vla_robot.models.normalization import Normalizer
from vla_robot.models.vla import VLAModel
from vla_robot.models.tiny import FAMILIES, make_tiny_backbone


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {f: make_tiny_backbone(f, root / f) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_each_family(backbones, family):
    model = tiny_vla(backbones[family], family, cameras=("front", "wrist"))
    batch = robot_batch(model)
    out = model.compute_loss(batch)
    assert set(out) == {"loss", "arm_loss", "gripper_loss"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.action_queries.grad is not None and model.action_queries.grad.abs().sum() > 0
    backbone_grads = [p.grad for n, p in model.backbone.named_parameters() if "embed" not in n]
    assert any(g is not None and g.abs().sum() > 0 for g in backbone_grads)
    chunk = model.predict_action(batch["images"], batch["instructions"], batch["state"])
    assert chunk.shape == (2, H, A) and chunk.dtype == torch.float32


def test_action_queries_are_appended_after_prompt(backbones):
    """The query states depend on the image and the instruction (they attend to the prompt)."""
    model = tiny_vla(backbones["paligemma"], "paligemma").eval()
    b = robot_batch(model)
    with torch.no_grad():
        h1 = model.encode(b["images"], ["put the cube on the cat"] * 2)
        h2 = model.encode(b["images"], ["put the cube on the dog"] * 2)
        other = {c: 255 - v for c, v in b["images"].items()}
        h3 = model.encode(other, ["put the cube on the cat"] * 2)
    assert h1.shape == (2, 4, 32)
    assert not torch.allclose(h1, h2) and not torch.allclose(h1, h3)


@pytest.mark.parametrize("family", ["paligemma", "idefics3"])
def test_discrete_target_trains_and_decodes(backbones, family):
    model = tiny_vla(backbones[family], family, target="discrete")
    batch = robot_batch(model)
    loss = model.compute_loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    ids = model.action_to_token_ids(batch["action"])
    assert ids.shape == (2, H * A) and int(ids.min()) >= model.action_token_offset()
    recon = model.token_ids_to_action(ids)
    assert (recon - batch["action"]).abs().max() < 2.0 / 255 + 1e-5  # one bin of the [-1, 1] range
    chunk = model.eval().predict_action(batch["images"], batch["instructions"])
    assert chunk.shape == (2, H, A)


def test_normalizer_round_trip_and_gripper_unit_range():
    stats = toy_stats()
    stats["action"]["q01"] = [-2.0] * A
    stats["action"]["q99"] = [2.0] * A
    stats["action"]["min"] = [0.0] * A
    stats["action"]["max"] = [0.04] * A
    norm = Normalizer(stats, A, S, gripper_dims=(A - 1,))
    action = torch.tensor([[-1.0] * (A - 1) + [0.04]])
    target = norm.normalise_action(action)
    assert torch.allclose(target[0, :-1], torch.full((A - 1,), -0.5)) and target[0, -1] == 1.0
    pred = target.clone()
    pred[..., -1] = 20.0  # a confident "open" logit
    assert torch.allclose(norm.denormalise(pred), action, atol=1e-5)


def test_missing_or_wrong_stats_error_clearly():
    with pytest.raises(ValueError, match="stats are missing"):
        Normalizer({}, A, S)
    bad = toy_stats()
    del bad["action"]["q99"]
    with pytest.raises(ValueError, match="q99"):
        Normalizer(bad, A, S)
    with pytest.raises(ValueError, match="expects 5"):
        Normalizer(toy_stats(), 5, S)


def test_config_rejects_unknown_family_and_target():
    with pytest.raises(ValueError, match="allowed: paligemma, qwen2_vl, qwen2_5_vl, idefics3"):
        VLAConfig(family="llava", backbone="x", action_dim=7, horizon=4)
    with pytest.raises(ValueError, match="continuous, discrete"):
        VLAConfig(family="paligemma", backbone="x", action_dim=7, horizon=4, target="diffusion")


def test_goal_prediction_trains_feeds_the_chunk_and_round_trips(backbones, tmp_path):
    """The predicted goal trains the queries, fits the final state, feeds the chunk, and bundles carry it."""
    cfg = tiny_vla(backbones["paligemma"], "paligemma").config
    cfg.goal_loss_weight = 1.0
    torch.manual_seed(0)
    model = VLAModel.from_pretrained_backbone(cfg, toy_stats())
    batch = robot_batch(model)
    batch["goal_state"] = torch.tensor([[1.0] * S, [-1.0] * S])
    out = model.compute_loss(batch)
    assert set(out) == {"loss", "arm_loss", "gripper_loss", "goal_loss"}
    assert torch.allclose(out["loss"], out["arm_loss"] + out["gripper_loss"] + out["goal_loss"])
    out["goal_loss"].backward()
    assert model.action_queries.grad.abs().sum() > 0 and model.head.goal.net[1].weight.grad.abs().sum() > 0
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(out["goal_loss"])
    for _ in range(30):
        optim.zero_grad()
        model.compute_loss(batch)["goal_loss"].backward()
        optim.step()
    assert float(model.compute_loss(batch)["goal_loss"]) < 0.1 * first
    model.eval()
    chunk = model.predict_action(batch["images"], batch["instructions"], batch["state"])
    path = save_bundle(model, tmp_path / "bundle", action_space={"type": "joint_position"}, provenance={})
    loaded, _ = load_bundle(path)
    assert torch.allclose(loaded.predict_action(batch["images"], batch["instructions"], batch["state"]), chunk, atol=1e-5)
    with torch.no_grad():  # the chunk is conditioned on the predicted goal, in the runtime's decoder too
        loaded.head.goal.net[1].bias.add_(3.0)
        hidden = loaded.encode(batch["images"], batch["instructions"])
        moved = loaded.decoder(hidden, batch["state"])
    assert torch.allclose(loaded.predict_action(batch["images"], batch["instructions"], batch["state"]), moved)
    assert not torch.allclose(moved, chunk, atol=1e-3)
    with pytest.raises(ValueError, match="no goal_state"):
        model.compute_loss({k: v for k, v in batch.items() if k != "goal_state"})


def test_goal_prediction_config_is_checked():
    with pytest.raises(ValueError, match="goal_loss_weight must be >= 0"):
        VLAConfig(family="paligemma", backbone="x", action_dim=7, horizon=4, state_dim=7, goal_loss_weight=-1)
    with pytest.raises(ValueError, match="needs the continuous target and proprioception"):
        VLAConfig(family="paligemma", backbone="x", action_dim=7, horizon=4, state_dim=0, goal_loss_weight=1)


@pytest.mark.parametrize("family,merge", [("paligemma", True), ("qwen2_vl", False), ("idefics3", True)])
def test_bundle_round_trip_same_actions(backbones, family, merge, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = tiny_vla(backbones[family], family)
    model.set_backbone(get_peft_model(model.backbone, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                 init_lora_weights=False)))
    model.eval()
    b = robot_batch(model)
    before = model.predict_action(b["images"], b["instructions"], b["state"])
    path = save_bundle(model, tmp_path / "bundle", action_space={"type": "joint_position"},
                       provenance={"test": True}, merge=merge)
    files = [p for p in path.rglob("*") if p.is_file()]
    assert all(p.suffix in (".json", ".safetensors", ".md", ".jinja", ".txt") for p in files), files
    loaded, info = load_bundle(path)
    after = loaded.predict_action(b["images"], b["instructions"], b["state"])
    assert torch.allclose(before, after, atol=1e-5)
    assert info.weights == ("merged" if merge else "adapter")
    assert info.cameras == ("front",) and info.image_size == 32 and info.horizon == H
    assert json.loads((path / "bundle.json").read_text())["provenance"]["test"] is True


def test_runtime_split_matches_predict_action(backbones):
    """encode → decoder (the CUDA-graph part) equals predict_action; decoder has static shapes."""
    model = tiny_vla(backbones["paligemma"], "paligemma").eval()
    b = robot_batch(model)
    with torch.no_grad():
        hidden = model.encode(b["images"], b["instructions"])
        split = model.decoder(hidden, b["state"])
        traced = torch.jit.trace(model.decoder, (hidden, b["state"]))
        assert torch.allclose(traced(hidden * 0.5, b["state"]), model.decoder(hidden * 0.5, b["state"]))
    assert torch.allclose(split, model.predict_action(b["images"], b["instructions"], b["state"]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (CPU twin: test_runtime_split_matches_predict_action)")
def test_decoder_captures_in_a_cuda_graph(backbones, tmp_path):
    model = tiny_vla(backbones["paligemma"], "paligemma").eval()
    path = save_bundle(model, tmp_path / "bundle")
    model, _ = load_bundle(path, device="cuda", dtype=torch.bfloat16)
    b = robot_batch(model)
    with torch.no_grad():
        hidden = model.encode(b["images"], b["instructions"])
        state = b["state"].cuda()
        static_h, static_s = hidden.clone(), state.clone()
        decoder = model.decoder
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            decoder(static_h, static_s)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = decoder(static_h, static_s)
        static_h.copy_(hidden * 0.5)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.allclose(static_out, decoder(hidden * 0.5, state), atol=1e-4)
        assert torch.allclose(model.predict_action(b["images"], b["instructions"], state),
                              decoder(hidden, state), atol=1e-4)
