"""Trainer end to end on real stores written with the real writer: config errors, resume, staged, VQA, overfit."""

from __future__ import annotations

import json

import pytest
import torch

from models_fixtures import record_twin_store, write_store
from training.cli import main as vla_train
from training.config import ConfigError, load_config
from training.trainer import prepare, train
from vla_robot.models.bundle import load_bundle
from vla_robot.models.tiny import make_tiny_backbone


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {
        "root": root,
        "backbone": str(make_tiny_backbone("paligemma", root / "pg")),
        "store": write_store(root / "target.zarr"),
        "pretrain": write_store(root / "pretrain.zarr", lengths=(9, 10, 9)),
    }


def _overrides(setup, out, *extra):
    return [f"data.stores=[{setup['store']}]", f"model.backbone={setup['backbone']}", "model.image_size=32",
            "model.horizon=4", "model.num_action_queries=4", "model.head_hidden=32", "data.batch_size=4",
            "strategy.lora.rank=4", "strategy.lora.target_modules=[q_proj,v_proj]", "optim.warmup_steps=2",
            "val_every=3", "ckpt_every=3", "log_every=1", f"out_dir={out}", *extra]


def test_bad_configs_fail_before_compute(setup, tmp_path):
    with pytest.raises(ConfigError, match="strategy.name 'sparse' is unknown; allowed: full, lora"):
        load_config(None, _overrides(setup, tmp_path, "strategy.name=sparse"))
    with pytest.raises(ConfigError, match="vqa.n_cards must be 0"):
        load_config(None, _overrides(setup, tmp_path, "vqa.n_cards=1"))
    with pytest.raises(ConfigError, match="model.horizon=50 is longer than the longest episode"):
        prepare(load_config(None, _overrides(setup, tmp_path, "model.horizon=50")))
    with pytest.raises(ConfigError, match="stats_path .* does not exist"):
        prepare(load_config(None, _overrides(setup, tmp_path, f"data.stats_path={tmp_path}/none.json")))
    (tmp_path / "bad_stats.json").write_text(json.dumps({"action": {"mean": [0.0] * 7}}))
    with pytest.raises(ValueError, match="lack 'q01'"):
        prepare(load_config(None, _overrides(setup, tmp_path, f"data.stats_path={tmp_path}/bad_stats.json")))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, _overrides(setup, tmp_path, "optim.learning_rate=1"))
    with pytest.raises(ConfigError, match="goal_loss_weight must be >= 0"):
        load_config(None, _overrides(setup, tmp_path, "model.goal_loss_weight=-0.5"))
    with pytest.raises(ConfigError, match="model.grounding_question 'always' is unknown; allowed: off, append, only"):
        load_config(None, _overrides(setup, tmp_path, "model.grounding_question=always"))
    with pytest.raises(ConfigError, match="goal_loss_weight > 0 needs .* model.use_proprio true"):
        load_config(None, _overrides(setup, tmp_path, "model.goal_loss_weight=1", "model.use_proprio=false"))
    with pytest.raises(ConfigError, match="nope_proj.*match no Linear module"):
        train(load_config(None, _overrides(setup, tmp_path / "x", "strategy.lora.target_modules=[nope_proj]")))
    assert not (tmp_path / "x" / "checkpoints").exists()
    assert vla_train(_overrides(setup, tmp_path, "strategy.name=sparse")) == 2
    assert vla_train(["--check", *_overrides(setup, tmp_path, "model.horizon=50")]) == 2
    assert vla_train(["--check", *_overrides(setup, tmp_path)]) == 0


@pytest.mark.parametrize("name", ["lora_paligemma", "staged_paligemma", "cotrain_smolvlm"])
def test_example_configs_load_and_validate(name):
    from pathlib import Path

    import training

    cfg = load_config(Path(training.__file__).parent / "configs" / f"{name}.yaml", ["steps=5"])
    assert cfg.steps == 5 and cfg.data.stores and cfg.model.backbone


def test_resume_continues_with_the_same_losses(setup, tmp_path):
    full = load_config(None, _overrides(setup, tmp_path / "a", "steps=6", "strategy.name=lora"))
    train(full)
    ref = [json.loads(x) for x in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    train(load_config(None, _overrides(setup, tmp_path / "b", "steps=6", "strategy.name=lora", "stop_after=3")))
    assert not (tmp_path / "b" / "bundle").exists()
    train(load_config(None, _overrides(setup, tmp_path / "b", "steps=6", "strategy.name=lora")))
    got = [json.loads(x) for x in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in got] == list(range(1, 7))
    for r, g in zip(ref, got):
        assert r["loss"] == g["loss"], (r, g)
    assert (tmp_path / "b" / "bundle" / "bundle.json").is_file()


def test_staged_pipeline_end_to_end_and_bundle_reload(setup, tmp_path):
    out = tmp_path / "staged"
    cfg = load_config(None, _overrides(setup, out, "strategy.name=staged", "steps=3", "model.goal_loss_weight=0.5",
                                        f"strategy.stage1.stores=[{setup['pretrain']}:0.7,{setup['store']}:0.3]",
                                        "strategy.stage1.steps=3", "strategy.stage1.lora.rank=4",
                                        "strategy.stage1.lora.target_modules=[q_proj,v_proj]"))
    bundle = train(cfg)
    assert (out / "stage1" / "checkpoints" / "step_0000003").is_dir()
    assert (out / "stage2" / "checkpoints" / "step_0000003").is_dir()
    assert (out / "curves.png").stat().st_size > 1000
    model, info = load_bundle(bundle)
    assert set(info.provenance["final_metrics"]) == {"stage1", "stage2"}
    assert all(m["goal_loss"] > 0 for m in info.provenance["final_metrics"].values())  # the goal prediction trained
    assert model.head.goal is not None
    # re-running resumes both finished stages from their checkpoints instead of training again
    stamp = (out / "stage2" / "history.jsonl").read_text()
    model_again, _ = load_bundle(train(cfg))
    assert (out / "stage2" / "history.jsonl").read_text() == stamp
    # stage 2 restarted from the stage-1 checkpoint gives the same bundle outputs
    cfg2 = load_config(None, _overrides(setup, tmp_path / "from_ckpt", "strategy.name=staged", "steps=3",
                                         "model.goal_loss_weight=0.5",
                                         f"strategy.stage1.checkpoint={out}/stage1/checkpoints/step_0000003",
                                         "strategy.stage1.lora.rank=4",
                                         "strategy.stage1.lora.target_modules=[q_proj,v_proj]"))
    model2, _ = load_bundle(train(cfg2))
    images = {"front": torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)}
    state = torch.randn(2, 7)
    a = model.predict_action(images, ["touch the emoji 1"] * 2, state)
    b = model2.predict_action(images, ["touch the emoji 1"] * 2, state)
    c = model_again.predict_action(images, ["touch the emoji 1"] * 2, state)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)


@pytest.mark.parametrize("strategy", ["full", "freeze_vision", "freeze_llm", "head_only"])
def test_cli_runs_each_strategy_and_writes_a_bundle(setup, tmp_path, strategy, capsys):
    out = tmp_path / strategy
    assert vla_train(_overrides(setup, out, f"strategy.name={strategy}", "steps=2")) == 0
    assert "trainable params:" in capsys.readouterr().out
    assert (out / "bundle" / "head.safetensors").is_file() and (out / "config.yaml").is_file()
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert "val_loss" in rows[-1]


def test_bf16_and_gradient_accumulation_run(setup, tmp_path):
    out = tmp_path / "bf16"
    train(load_config(None, _overrides(setup, out, "strategy.name=lora", "steps=2", "precision=bf16", "grad_accum=2")))
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["loss"] == r["loss"] and r["grad_norm"] > 0 for r in rows)
    resolved = (out / "config.yaml").read_text()
    assert "precision: bf16" in resolved and "grad_accum: 2" in resolved


def test_vqa_cotraining_with_twin_questions(setup, tmp_path):
    from training.vqa import generate_twin_vqa

    samples = generate_twin_vqa(5, image_size=32, seed=1)
    questions = [s["question"] for s in samples]
    assert "which emoji is at the left?" in questions and "where is the cube?" in questions
    assert samples[2]["answer"] in ("left", "middle", "right") and samples[0]["image"].shape == (3, 32, 32)
    # instruction grounding: one robot instruction per card, answered with where that card lies
    grounded = generate_twin_vqa(7, image_size=32, seed=1, n_cards=2, layout_seed=2)
    assert [s["answer"] for s in grounded[5:7]] == ["left", "right"]
    left_name = grounded[0]["answer"]  # "which emoji is at the left?"
    assert left_name in grounded[5]["question"] and left_name not in grounded[6]["question"]
    # the grounding set alone: the same pairs for the same scenes, and nothing else
    only = generate_twin_vqa(2, image_size=32, seed=1, n_cards=2, layout_seed=2, questions="grounding")
    assert [(q["question"], q["answer"]) for q in only] == [(g["question"], g["answer"]) for g in grounded[5:7]]
    assert torch.equal(only[0]["image"], grounded[5]["image"])
    scene = generate_twin_vqa(5, image_size=32, seed=1, n_cards=2, layout_seed=2, questions="scene")
    assert [q["question"] for q in scene] == [g["question"] for g in grounded[:5]]
    with pytest.raises(ValueError, match="questions='nouns'; allowed: all, scene, grounding"):
        generate_twin_vqa(2, image_size=32, questions="nouns")
    with pytest.raises(ConfigError, match="vqa.questions 'nouns' is unknown; allowed: all, scene, grounding"):
        load_config(None, _overrides(setup, tmp_path, "vqa.questions=nouns"))
    out = tmp_path / "vqa"
    train(load_config(None, _overrides(setup, out, "strategy.name=lora", "steps=4", "vqa.ratio=0.5",
                                        "vqa.num_samples=10", "vqa.n_cards=2", "vqa.layout_seed=2",
                                        "vqa.questions=grounding")))
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert any("vqa_loss" in r for r in rows) and any("loss" in r for r in rows)


def test_tiny_model_overfits_a_small_twin_store(setup, tmp_path):
    """Two scripted-expert episodes recorded from the MuJoCo twin with the real writer."""
    store = record_twin_store(tmp_path / "twin.zarr", episodes=2, steps=12)
    out = tmp_path / "overfit"
    cfg = load_config(None, [f"data.stores=[{store}]", f"model.backbone={setup['backbone']}", "model.image_size=32",
                             "model.horizon=4", "model.num_action_queries=4", "model.head_hidden=64",
                             "data.val_fraction=0", "data.batch_size=8", "strategy.name=full", "steps=80",
                             "optim.lr_head=3e-3", "optim.lr_backbone=1e-3", "optim.warmup_steps=5",
                             "optim.weight_decay=0", "val_every=1000", "ckpt_every=1000", f"out_dir={out}"])
    bundle = train(cfg)
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    first, last = rows[0]["loss"], min(r["loss"] for r in rows[-5:])
    assert last < first / 10, (first, last)
    from vla_robot.data.dataset import VLADataset, collate

    model, info = load_bundle(bundle)
    ds = VLADataset(store, cameras=["front"], image_size=(32, 32), horizon=4, split="all")
    batch = collate([ds[i] for i in range(len(ds))])
    pred = model.predict_action(batch["images"], list(batch["instruction"]), batch["state"])
    valid = ~batch["action_is_pad"]
    err = (pred - batch["action"]).abs()[valid]  # (N, D)
    span = batch["action"].flatten(0, 1).max(0).values - batch["action"].flatten(0, 1).min(0).values
    moving = span > 0.05
    assert moving.sum() >= 3
    rel = err.mean(0)[moving] / span[moving]
    assert float(rel.max()) < 0.1, rel


def test_ddp_with_two_cpu_processes_via_accelerate_launch(setup, tmp_path):
    """The documented multi-GPU path, on CPU: `accelerate launch --multi_gpu` with 2 processes (gloo DDP).

    (`accelerate launch --cpu --num_processes 2` starts ONE process unless mpirun is set up; this
    test once passed that way without any DDP. The RNG file of process 1 proves two ran.)"""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training.cli",
           *_overrides(setup, out, "strategy.name=lora", "steps=2", "grad_accum=2", "data.batch_size=2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trainable params:") == 1  # printed by the main process only
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    ckpt = out / "checkpoints" / "step_0000002"
    assert (ckpt / "rng_rank1.pt").is_file() and json.loads((ckpt / "state.json").read_text())["world_size"] == 2
    model, _ = load_bundle(out / "bundle")
    assert model.config.horizon == 4
