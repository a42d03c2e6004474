"""What engineers expect of a trainer: precision, safe resume, retention, checkpointing, augmentation,
weight decay and loss logging. One process, tiny PaliGemma, real stores."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from models_fixtures import robot_batch, tiny_vla, write_store
from training.checkpoint import checkpoints, latest_checkpoint
from training.config import AugmentSection, ConfigError, LoraSection, OptimConfig, load_config
from training.trainer import train
from vla_robot.models.tiny import make_tiny_backbone


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eng")
    return {"backbone": str(make_tiny_backbone("paligemma", root / "pg")), "store": write_store(root / "t.zarr")}


def _overrides(setup, out, *extra):
    return [f"data.stores=[{setup['store']}]", f"model.backbone={setup['backbone']}", "model.image_size=32",
            "model.horizon=4", "model.num_action_queries=2", "model.head_hidden=16", "data.batch_size=2",
            "data.val_fraction=0", "strategy.lora.rank=2", "strategy.lora.target_modules=[q_proj,v_proj]",
            "optim.warmup_steps=1", "log_every=1", f"out_dir={out}", *extra]


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# ------------------------------------------------------------------ precision
def test_bf16_keeps_float32_master_weights_so_small_updates_survive(setup, tmp_path):
    """precision=bf16: bf16 autocast, float32 weights. A 1e-4 Adam step on a LayerNorm gain of 1.0
    moves it in float32; stored in bf16 (8 bits of mantissa) the same step rounds away."""
    out = tmp_path / "bf16"
    train(load_config(None, _overrides(setup, out, "strategy.name=full", "precision=bf16", "steps=1",
                                       "optim.lr_backbone=1e-4", "optim.weight_decay=0")))
    before = load_file(f"{setup['backbone']}/model.safetensors")
    after = load_file(str(out / "bundle" / "backbone" / "model.safetensors"))
    # SigLIP's LayerNorm gains start at 1.0 (Gemma's RMSNorm stores gain - 1, near 0, where bf16 is fine)
    norms = [k for k in before if "norm" in k and k.endswith(".weight") and float(before[k].abs().min()) > 0.5
             and "vision_tower.head" not in k]  # (SigLIP's pooling head is unused: frozen by the trainer)
    assert norms
    for k in norms:
        assert after[k].dtype == torch.float32
        delta = (after[k] - before[k]).abs()
        assert 0.5e-4 < float(delta.max()) < 2e-4, (k, float(delta.max()))  # Adam's first step: ~lr
        assert torch.equal(after[k].bfloat16(), before[k].bfloat16()), "in bf16 the update would be lost"


def test_bf16_autocast_runs_the_backbone_in_bf16(setup):
    from training.distributed import make_accelerator

    model = tiny_vla(setup["backbone"], "paligemma")
    seen = []
    layer = model.backbone.model.language_model.layers[0].self_attn.q_proj
    layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    acc = make_accelerator("bf16")
    with acc.autocast():
        model.compute_loss(robot_batch(model))
    assert seen == [torch.bfloat16] and layer.weight.dtype == torch.float32
    make_accelerator("fp32")  # leave the shared accelerate state as the other tests expect


def test_pure_bf16_is_an_explicit_opt_in_for_adapters_only(setup, tmp_path):
    for strategy in ("full", "freeze_vision", "freeze_llm", "staged"):
        with pytest.raises(ConfigError, match="bf16_pure stores the backbone in bf16"):
            load_config(None, _overrides(setup, tmp_path, f"strategy.name={strategy}", "precision=bf16_pure",
                                         f"strategy.stage1.stores=[{setup['store']}]"))
    from training.strategies import apply_strategy
    from training.trainer import build_model, prepare

    cfg = load_config(None, _overrides(setup, tmp_path, "strategy.name=lora", "precision=bf16_pure"))
    _, model_cfg, stats, _ = prepare(cfg)
    model = build_model(cfg, model_cfg, stats)
    apply_strategy(model, "lora", cfg.strategy.lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for n, p in model.backbone.named_parameters() if not p.requires_grad and "lora_" not in n]
    assert all(p.dtype == torch.float32 for p in trainable)  # adapters, queries, head
    assert all(p.dtype == torch.bfloat16 for p in frozen)  # the frozen base: half the memory


# ------------------------------------------------------------------ resume
def test_a_crash_leaves_no_duplicate_history_and_resume_is_exact(setup, tmp_path):
    ref = tmp_path / "ref"
    train(load_config(None, _overrides(setup, ref, "steps=4", "ckpt_every=2")))
    out = tmp_path / "crash"
    train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=2", "stop_after=3")))
    assert [r["step"] for r in _rows(out / "history.jsonl")] == [1, 2, 3]  # step 3 after the last checkpoint
    with (out / "history.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 0.')  # a row torn by the crash
    (out / "checkpoints" / "step_0000004.partial").mkdir()  # a checkpoint the crash left half-written
    assert latest_checkpoint(out / "checkpoints").name == "step_0000002"
    train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=2")))
    rows = _rows(out / "history.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows] == [r["loss"] for r in _rows(ref / "history.jsonl")]
    assert not (out / "checkpoints" / "step_0000004.partial").exists()
    state = json.loads((out / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["data"]["positions"]["robot"] == 4 * 2 and state["data"]["micro"] == 4  # the sampler position
    assert (out / "checkpoints" / "step_0000004" / "rng_rank0.pt").is_file()


def test_a_changed_config_is_refused_or_applied_and_said(setup, tmp_path, capsys):
    out = tmp_path / "changed"
    train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=2", "stop_after=2")))
    with pytest.raises(ConfigError, match=r"(?s)optim.lr_head: 0.001 -> 0.0005.*resume_apply"):
        train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=2", "optim.lr_head=5e-4")))
    with pytest.raises(ConfigError, match="model, strategy and distributed settings"):
        load_config(None, _overrides(setup, out, "resume_apply=[strategy.lora.rank]"))
    capsys.readouterr()
    train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=2", "optim.lr_head=5e-4",
                                       "resume_apply=[optim.lr_head]", "log_every=2")))
    assert "resume: applying changed settings from step 2: optim.lr_head: 0.001 -> 0.0005" in capsys.readouterr().out
    rows = _rows(out / "history.jsonl")
    # the restored optimizer state did not override it: from step 3 on, the new lr on the same schedule
    # (row k logs the lr the next step uses: base x factor(k))
    assert rows[1]["lr_head"] == pytest.approx(1e-3 * _cosine(2, 4))
    assert rows[2]["lr_head"] == pytest.approx(5e-4 * _cosine(3, 4))


def _cosine(step: int, total: int, warmup: int = 1, floor: float = 0.1) -> float:
    from training.schedule import lr_factor

    return lr_factor(warmup, total, floor)(step)


def test_only_the_newest_checkpoints_are_kept(setup, tmp_path):
    out = tmp_path / "keep"
    train(load_config(None, _overrides(setup, out, "steps=4", "ckpt_every=1", "keep_checkpoints=2")))
    assert [s for s, _ in checkpoints(out / "checkpoints")] == [3, 4]
    with pytest.raises(ConfigError, match="keep_checkpoints must be >= 0"):
        load_config(None, _overrides(setup, out, "keep_checkpoints=-1"))


# ------------------------------------------------------------------ gradient checkpointing
def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_gradients(setup, tmp_path):
    from training.strategies import apply_strategy, enable_gradient_checkpointing

    def grads(checkpointing: bool):
        model = tiny_vla(setup["backbone"], "paligemma")
        apply_strategy(model, "lora", LoraSection(rank=2, target_modules=["q_proj", "v_proj"]))
        if checkpointing:
            enable_gradient_checkpointing(model)
        model.train()
        saved = []  # bytes autograd keeps for backward during the forward

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.compute_loss(robot_batch(model))["loss"]
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, sum(saved)

    plain, plain_bytes = grads(False)
    ckpt, ckpt_bytes = grads(True)
    # the decoder/vision layers' activations are recomputed (measured 61 % of the bytes kept; the rest are
    # the embeddings, the head and the layer inputs, which checkpointing keeps)
    assert ckpt_bytes < 0.75 * plain_bytes, (ckpt_bytes, plain_bytes)
    assert plain.keys() == ckpt.keys()
    for k in plain:
        assert torch.allclose(plain[k], ckpt[k], atol=1e-6), k
    out = tmp_path / "gc"
    train(load_config(None, _overrides(setup, out, "steps=1", "model.gradient_checkpointing=true")))
    assert (out / "bundle" / "bundle.json").is_file()


# ------------------------------------------------------------------ augmentation
def test_augmentation_is_seeded_by_stream_position_and_off_for_eval(setup, tmp_path):
    from training.augment import ImageAugmenter, sample_seed
    from training.data import StreamDataset
    from vla_robot.data.dataset import VLADataset
    from vla_robot.models.prompting import center_crop

    ds = VLADataset(setup["store"], cameras=["front"], image_size=(32, 32), horizon=4, split="all")
    aug = ImageAugmenter(AugmentSection(enabled=True))
    stream = StreamDataset([ds], augment=aug, seed=0)
    a, b, c = stream[(5, 100)], stream[(5, 100)], stream[(5, 101)]
    plain = ds[5]["images"]["front"]
    assert torch.equal(a["images"]["front"], b["images"]["front"])  # same position → same draw (any process)
    assert not torch.equal(a["images"]["front"], c["images"]["front"])
    assert not torch.equal(a["images"]["front"], plain) and a["images"]["front"].shape == plain.shape
    assert torch.equal(stream[5]["images"]["front"], plain)  # no position (validation): untouched
    assert sample_seed(0, "robot", 7) != sample_seed(1, "robot", 7)
    none = ImageAugmenter(AugmentSection(enabled=True, crop_scale=1.0, brightness=0, contrast=0, saturation=0, hue=0))
    assert torch.equal(none({"front": plain}, 3)["front"], plain)
    # hue and saturation never colour a gray pixel; brightness scales it
    gray = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    jitter = ImageAugmenter(AugmentSection(enabled=True, crop_scale=1.0, brightness=0, contrast=0))(
        {"c": gray}, 11)["c"]
    assert torch.equal(jitter[0], jitter[1]) and torch.equal(jitter[1], jitter[2])
    # the bundle centre-crops the trained crop area at inference
    out = tmp_path / "aug"
    train(load_config(None, _overrides(setup, out, "steps=1", "data.augment.enabled=true",
                                       "data.augment.crop_scale=0.81")))
    from vla_robot.models.bundle import load_bundle

    model, info = load_bundle(out / "bundle")
    assert info.config.crop_scale == pytest.approx(0.81)
    frame = torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8)
    assert center_crop(frame, 0.81).shape[-2:] == (36, 36)
    got = model.preprocess({"front": frame}, ["x"])["pixel_values"]
    want = model.preprocessor.processor(text=["<image>x"], images=[[_resize(center_crop(frame, 0.81))]],
                                         return_tensors="pt")["pixel_values"]
    assert torch.allclose(got, want)
    with pytest.raises(ConfigError, match="crop_scale must be in"):
        load_config(None, _overrides(setup, out, "data.augment.crop_scale=0"))


def _resize(frame):
    from vla_robot.models.prompting import resize_uint8

    return resize_uint8(frame, 32)[0].permute(1, 2, 0).numpy()


# ------------------------------------------------------------------ weight decay
def test_no_weight_decay_on_norms_biases_and_embeddings(setup):
    from training.schedule import build_optimizer
    from training.strategies import apply_strategy

    model = tiny_vla(setup["backbone"], "paligemma")
    apply_strategy(model, "full")
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert "action_queries" in plain
    assert any("embed_tokens" in n for n in plain) and any("position_embedding" in n for n in plain)
    assert all(not n.endswith(".bias") for n in decay)
    assert all("norm" not in n and "embed_tokens" not in n for n in decay)
    assert any(n.endswith("q_proj.weight") for n in decay) and any(n.startswith("head.mlp") for n in decay)
    # with a zero gradient only the decayed weights shrink
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in plain)
    assert all(not torch.equal(before[n], after[n]) for n in decay if before[n].abs().sum() > 0)


# ------------------------------------------------------------------ loss logging
def test_vqa_and_action_losses_are_logged_once_each(setup):
    """A step of one robot and one VQA micro-batch logs each loss at its own value
    (it used to log vqa_loss twice and the action loss halved)."""
    from training.data import VQACollator
    from training.distributed import StepLog
    from vla_robot.models.prompting import VLAPreprocessor

    model = tiny_vla(setup["backbone"], "paligemma")
    robot = model(robot_batch(model))
    collate = VQACollator(VLAPreprocessor("paligemma", model.processor, ("vqa",), 32))
    vqa = model(collate([{"image": torch.zeros(3, 32, 32, dtype=torch.uint8), "question": "where is the cube?",
                          "answer": "left"}]))
    log = StepLog()
    log.add(robot["terms"])
    log.add(vqa["terms"])

    class One:
        num_processes = 1

    logged = log.result(One())
    assert logged["loss"] == pytest.approx(float(robot["loss"]), rel=1e-6)
    assert logged["vqa_loss"] == pytest.approx(float(vqa["loss"]), rel=1e-6)
    assert logged["arm_loss"] == pytest.approx(float(robot["arm_loss"]), rel=1e-6)


# ------------------------------------------------------------------ RNG
def test_rng_state_round_trip_cpu():
    from training.checkpoint import rng_state, set_rng_state

    torch.manual_seed(5)
    state = rng_state()
    a = torch.rand(4)
    torch.manual_seed(6)
    set_rng_state(state)
    assert torch.equal(torch.rand(4), a)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; CPU twin: test_rng_state_round_trip_cpu")
def test_rng_state_round_trip_cuda():
    """Dropout on a GPU draws from the CUDA generator: a checkpoint saves and restores it too."""
    from training.checkpoint import rng_state, set_rng_state

    torch.cuda.manual_seed_all(5)
    state = rng_state()
    assert "cuda" in state
    a = torch.rand(4, device="cuda")
    torch.cuda.manual_seed_all(6)
    set_rng_state(state)
    assert torch.equal(torch.rand(4, device="cuda"), a)
