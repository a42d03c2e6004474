"""Two gloo processes on CPU train exactly what one process trains on the same global batch.

One `torchrun --nproc_per_node 2` (gloo) runs every case (tests/distributed_runner.py); the
single-process references run here. Compared: every tensor of the resulting bundles (head,
queries, merged backbone) after 2 optimizer steps of 2 micro-batches each.

Cases: every strategy with each target and with and without VQA co-training (DDP_CASES) on a
PaliGemma with an untied lm_head (so the robot path leaves it unused, and `full` also leaves SigLIP's
pooling head unused), then FSDP2 cases, a sharded resume and a resume on another world size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models_fixtures import write_store
from training.config import ConfigError, load_config
from training.trainer import train
from vla_robot.models.tiny import make_tiny_backbone

ROOT = Path(__file__).resolve().parents[1]
PER_PROCESS = 1


def _first_error(log: str) -> str:
    """The first traceback of a failed launch (the last lines are only torchrun's summary)."""
    lines = [x for x in log.splitlines() if "it/s" not in x and "Loading weights" not in x]
    start = next((i for i, x in enumerate(lines) if "Traceback" in x), max(0, len(lines) - 80))
    return "\n".join(lines[start:start + 80])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Each strategy with each target and with and without VQA, in 13 runs instead of all 21
# combinations (a covering design; CI has 2 cores): what DDP must get right is which parameters
# a micro-batch leaves without a gradient, and that depends on the pairs covered here.
DDP_CASES = [
    ("full", "continuous", False), ("full", "continuous", True), ("full", "discrete", True),
    ("lora", "continuous", False), ("lora", "discrete", False), ("lora", "continuous", True),
    ("freeze_vision", "continuous", True), ("freeze_vision", "discrete", False),
    ("freeze_llm", "continuous", False), ("freeze_llm", "discrete", True),
    ("head_only", "continuous", False),  # head_only refuses VQA and the discrete target (nothing would train)
    ("staged", "continuous", True), ("staged", "discrete", False),
]


def _cases() -> list[tuple[str, list[str]]]:
    cases = []
    for strategy, target, vqa in DDP_CASES:
        extra = [f"strategy.name={strategy}", f"model.target={target}"] + (["vqa.ratio=0.5"] if vqa else [])
        cases.append((f"ddp-{strategy}-{target}{'-vqa' if vqa else ''}", extra))
    cases += [
        ("fsdp-full-vqa", ["strategy.name=full", "vqa.ratio=0.5", "distributed.sharding=fsdp"]),
        ("fsdp-lora-discrete", ["strategy.name=lora", "model.target=discrete", "distributed.sharding=fsdp"]),
        ("fsdp-staged", ["strategy.name=staged", "distributed.sharding=fsdp"]),
    ]
    return cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs every case on 2 processes (one launch) and on 1 process; returns their directories."""
    from PIL import Image

    root = tmp_path_factory.mktemp("dist")
    backbone = make_tiny_backbone("paligemma", root / "pg", tie_word_embeddings=False)
    store = write_store(root / "target.zarr", lengths=(9, 12, 10, 11))
    pretrain = write_store(root / "pretrain.zarr", lengths=(10, 9, 11))
    rng = np.random.default_rng(0)
    lines = []
    for i, (q, a) in enumerate([("where is the cube?", "left"), ("which emoji is at the right?", "cat face"),
                                ("how many cards are on the table?", "two")]):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / f"vqa{i}.png")
        lines.append(json.dumps({"image": f"vqa{i}.png", "question": q, "answer": a}))
    (root / "vqa.jsonl").write_text("\n".join(lines))

    def overrides(out: Path, batch: int, extra: list[str]) -> list[str]:
        return [f"data.stores=[{store}]", f"model.backbone={backbone}", "model.image_size=32", "model.horizon=4",
                "model.num_action_queries=2", "model.head_hidden=16", f"data.batch_size={batch}",
                "data.val_fraction=0", "strategy.lora.rank=2", "strategy.lora.target_modules=[q_proj,v_proj]",
                "strategy.stage1.lora.rank=2", "strategy.stage1.lora.target_modules=[q_proj,v_proj]",
                f"strategy.stage1.stores=[{pretrain}]", "strategy.stage1.steps=2", "steps=2", "grad_accum=2",
                "seed=2", f"vqa.source={root / 'vqa.jsonl'}", "optim.lr_head=1e-3", "optim.lr_backbone=1e-3",
                "optim.warmup_steps=1", "ckpt_every=1", "log_every=1", "val_every=100", f"out_dir={out}", *extra]

    cases = _cases()
    spec = [{"name": name, "overrides": overrides(root / "two" / name, PER_PROCESS, extra)} for name, extra in cases]
    # a run stopped after one step, resumed later by a single process with the same global batch
    spec.append({"name": "resume-ws", "overrides": overrides(root / "two" / "resume-ws", PER_PROCESS,
                                                              ["strategy.name=lora", "vqa.ratio=0.5", "stop_after=1"])})
    # a sharded run stopped after one step and resumed by the same 2 processes
    fsdp_resume = ["strategy.name=full", "distributed.sharding=fsdp"]
    spec.append({"name": "fsdp-resume-a", "overrides": overrides(root / "two" / "fsdp-resume", PER_PROCESS,
                                                                  [*fsdp_resume, "stop_after=1"])})
    spec.append({"name": "fsdp-resume-b", "overrides": overrides(root / "two" / "fsdp-resume", PER_PROCESS,
                                                                  fsdp_resume)})
    (root / "cases.json").write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "tests" / "distributed_runner.py"), str(root / "cases.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    (root / "launch.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, _first_error(proc.stdout + proc.stderr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes: faster than 2 threads on 2 shared cores
    for name, extra in cases:
        train(load_config(None, overrides(root / "one" / name, 2 * PER_PROCESS,
                                          [e for e in extra if not e.startswith("distributed.")])))
    train(load_config(None, overrides(root / "one" / "ref-lora-vqa", 2 * PER_PROCESS,
                                      ["strategy.name=lora", "vqa.ratio=0.5"])))
    train(load_config(None, overrides(root / "one" / "ref-full", 2 * PER_PROCESS, ["strategy.name=full"])))
    # resume the 2-process checkpoint here, in one process with twice the per-process batch
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train(load_config(None, overrides(root / "two" / "resume-ws", 2 * PER_PROCESS,
                                          ["strategy.name=lora", "vqa.ratio=0.5", "resume_apply=[data.batch_size]"])))
    torch.set_num_threads(threads)
    return {"root": root, "log": proc.stdout + proc.stderr, "cases": [n for n, _ in cases],
            "overrides": overrides, "resume_log": printed.getvalue()}


def bundle_tensors(bundle: Path) -> dict[str, torch.Tensor]:
    out = {f"head.{k}": v for k, v in load_file(str(bundle / "head.safetensors")).items()}
    for f in sorted((bundle / "backbone").glob("*.safetensors")):
        out.update({f"backbone.{k}": v.float() for k, v in load_file(str(f)).items()})
    return out


def assert_same_bundle(a: Path, b: Path, atol: float = 1e-5) -> None:
    """Equal within float tolerance. Attention key biases get 10x the tolerance: their gradient is
    zero in exact arithmetic (softmax ignores a shift shared by all keys), so what reaches Adam is
    rounding noise that Adam scales up (measured: up to 2.2e-5 at lr 1e-3, every other tensor
    <= 3.5e-6). A missing or doubled gradient reduction moves weights by ~lr = 1e-3."""
    ta, tb = bundle_tensors(a), bundle_tensors(b)
    assert set(ta) == set(tb)
    for k in ta:
        tol = 10 * atol if k.endswith("k_proj.bias") else atol
        diff = float((ta[k] - tb[k]).abs().max())
        assert diff <= tol, f"{a} vs {b}: {k} differs by {diff:.2e}"


def test_two_processes_train_what_one_process_trains(runs):
    """Every strategy x target x VQA case, DDP and FSDP: the same parameters after 2 steps."""
    root = runs["root"]
    for name in runs["cases"]:
        assert_same_bundle(root / "two" / name / "bundle", root / "one" / name / "bundle")
        if name.startswith("ddp"):  # the weights did move between the steps: a run that trains nothing also "matches"
            ckpts = sorted((root / "two" / name).glob("**/checkpoints/step_*/trainable.safetensors"))[-2:]
            first, last = (load_file(str(p)) for p in ckpts)
            assert any(not torch.equal(first[k], last[k]) for k in first), name
    # the logged losses are global: both runs log the same values
    for name in ("ddp-lora-continuous-vqa", "ddp-full-discrete-vqa", "fsdp-full-vqa", "ddp-staged-continuous-vqa/stage2"):
        two = [json.loads(x) for x in (root / "two" / name / "history.jsonl").read_text().splitlines()]
        one = [json.loads(x) for x in (root / "one" / name / "history.jsonl").read_text().splitlines()]
        assert len(two) == len(one) == 2
        for r2, r1 in zip(two, one):
            for key in ("loss", "vqa_loss"):
                assert (key in r2) == (key in r1)
                if key in r2:
                    assert abs(r2[key] - r1[key]) < 1e-4 * max(1.0, abs(r1[key])), (name, key, r2, r1)


def test_unused_parameters_are_found_frozen_and_reported(runs):
    log = runs["log"]
    # full fine-tuning: SigLIP's pooling head and the untied lm_head never get a gradient from robot batches
    state = json.loads((runs["root"] / "two" / "ddp-full-continuous" / "checkpoints" / "step_0000002" /
                        "state.json").read_text())
    frozen = state["frozen_unused"]
    assert any("vision_tower.head" in n for n in frozen) and any(n.endswith("lm_head.weight") for n in frozen)
    # with VQA the lm_head trains (VQA batches) and the action head too (robot batches): nothing frozen
    state = json.loads((runs["root"] / "two" / "ddp-full-continuous-vqa" / "checkpoints" / "step_0000002" /
                        "state.json").read_text())
    assert not any(n.endswith("lm_head.weight") for n in state["frozen_unused"])
    assert "DDP (several processes) searches unused ones every step" in log
    # the discrete target never uses the action queries and the head
    state = json.loads((runs["root"] / "two" / "ddp-lora-discrete" / "checkpoints" / "step_0000002" /
                        "state.json").read_text())
    assert "action_queries" in state["frozen_unused"]


def test_sharded_checkpoints_resume_and_export(runs):
    """FSDP: every process writes its shard; a stopped run resumes to the uninterrupted result;
    `vla-train --export-bundle` rebuilds the bundle in one process from the shards."""
    from training.cli import main as vla_train

    run = runs["root"] / "two" / "fsdp-resume"
    ckpt = run / "checkpoints" / "step_0000002"
    assert (ckpt / "sharded" / "__0_0.distcp").is_file() and (ckpt / "sharded" / "__1_0.distcp").is_file()
    assert json.loads((ckpt / "state.json").read_text())["sharded"] is True
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # resumed at step 1, no duplicate row
    assert_same_bundle(run / "bundle", runs["root"] / "one" / "ref-full" / "bundle")
    out = runs["root"] / "exported"
    assert vla_train(["--export-bundle", str(runs["root"] / "two" / "fsdp-staged"), "--out", str(out)]) == 0
    assert_same_bundle(out, runs["root"] / "one" / "fsdp-staged" / "bundle")
    # a sharded checkpoint cannot be resumed by a replicated run: refused before any step, naming the key
    cfg = load_config(None, runs["overrides"](run, PER_PROCESS, ["strategy.name=full", "steps=3",
                                                                "resume_apply=[steps]"]))
    with pytest.raises(ConfigError, match="distributed.sharding: 'fsdp' -> 'none'"):
        train(cfg)


def test_resume_on_another_world_size_continues_the_same_samples(runs):
    """Stopped after 1 step on 2 processes x 2 samples, resumed on 1 process x 4 samples:
    the result equals the uninterrupted single-process run."""
    run = runs["root"] / "two" / "resume-ws"
    assert_same_bundle(run / "bundle", runs["root"] / "one" / "ref-lora-vqa" / "bundle")
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert "2 -> 1 processes" in runs["resume_log"] and "resume: applying changed settings" in runs["resume_log"]
    assert f"data.batch_size: {PER_PROCESS} -> {2 * PER_PROCESS}" in runs["resume_log"]
