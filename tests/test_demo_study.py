"""The study harness: each arm runs the right command, and the table aggregates the files it finds."""

import json

import pytest

from vla_robot.demo.plan import QUICK, Paths
from vla_robot.demo.study import ARMS, PAPER_CLAIMS, arm_phases, summarise_study, write_outputs


def test_each_arm_trains_with_its_strategy(tmp_path):
    data = Paths(tmp_path / "demo")
    expect = {"full": "strategy.name=full", "lora": "strategy.name=lora", "staged": "strategy.name=staged",
              "freeze_vision": "strategy.name=freeze_vision", "head_only": "strategy.name=head_only",
              "cotrain": "vqa.ratio=0.25", "no_prior": "strategy.name=full"}
    assert set(expect) == set(ARMS) == set(PAPER_CLAIMS)
    for arm in ARMS:
        phases = arm_phases(arm, 1, QUICK, tmp_path / "study", data)
        assert [p.name for p in phases] == [f"train_{arm}_s1", f"eval_train_{arm}_s1", f"eval_val_{arm}_s1", f"probe_{arm}_s1"]
        train = phases[0].command
        assert expect[arm] in train and "seed=1" in train
        backbone = str(tmp_path / "study" / "no_prior") if arm == "no_prior" else str(data.prior)
        assert f"model.backbone={backbone}" in train
        assert "grinning_face_train.zarr" in train
        assert f"model.goal_loss_weight={QUICK.goal_loss_weight}" in train  # every arm shares the demo's head
        assert "--request-threshold" in phases[1].command  # and its eval runtime
    cotrain = arm_phases("cotrain", 0, QUICK, tmp_path / "study", data)[0].command
    assert "vqa.questions=all" in cotrain  # the study's co-training arm keeps the whole twin VQA mixture
    staged = arm_phases("staged", 0, QUICK, tmp_path / "study", data)[0].command
    assert "reach_train.zarr" in staged and "push_train.zarr" in staged
    with pytest.raises(ValueError, match="unknown study arm"):
        arm_phases("dropout", 0, QUICK, tmp_path, data)


def _fake_run(root, arm, seed, train_rec, val_rec, probe_val):
    d = root / "arms" / f"{arm}_s{seed}"
    for split, rec in (("train", train_rec), ("val", val_rec)):
        (d / "eval" / split).mkdir(parents=True)
        metrics = {"episodes": 10, "exe_sr": 0.8, "rec_sr": rec, "sr": 0.8 * rec}
        (d / "eval" / split / "report.json").write_text(json.dumps({"metrics": {split: metrics}, "eval": {"n_cards": 2}}))
    probe = {"identify_train": 0.5, "identify_val": probe_val, "where_train": 0.5, "where_val": 0.5,
             "twin_where_val": 0.9}
    (d / "probe.json").write_text(json.dumps(probe))


def test_table_averages_seeds_from_the_files(tmp_path):
    _fake_run(tmp_path, "lora", 0, 0.6, 0.5, 0.30)
    _fake_run(tmp_path, "lora", 1, 0.8, 0.7, 0.10)
    _fake_run(tmp_path, "full", 0, 0.9, 0.4, 0.05)
    rows = {r["arm"]: r for r in summarise_study(tmp_path)}
    assert list(rows) == ["full", "lora"]  # ARMS order
    assert rows["lora"]["train_rec_sr"] == pytest.approx(0.7)
    assert rows["lora"]["train_rec_sr_std"] == pytest.approx(0.1414, abs=1e-3)
    assert rows["lora"]["probe_identify_val"] == pytest.approx(0.2)
    assert rows["full"]["val_sr"] == pytest.approx(0.32)
    paths = write_outputs(list(rows.values()), tmp_path, n_cards=2)
    table = paths["table"].read_text()
    assert "| lora | 2 | 80 | 70 ± 14 |" in table and table.splitlines()[2].endswith("| 50 | 90 |")
    assert paths["plot"].stat().st_size > 1000
    assert json.loads(paths["json"].read_text())["random_rec_sr"] == 0.5


def test_demo_settings_name_the_bad_value():
    from vla_robot.demo.plan import DemoSettings

    with pytest.raises(ValueError, match="eval_request_threshold=1.5 must be in"):
        DemoSettings(eval_request_threshold=1.5)
    with pytest.raises(ValueError, match="goal_loss_weight=-1 must be >= 0"):
        DemoSettings(goal_loss_weight=-1)
    with pytest.raises(ValueError, match="grounding_question='ask'; allowed: off, append, only"):
        DemoSettings(grounding_question="ask")
    with pytest.raises(ValueError, match="eval_merge='mean'"):
        DemoSettings(eval_merge="mean")


def test_every_training_command_passes_vla_train_config_checks(tmp_path):
    """The demo's and each arm's `vla-train` settings are validated by the real CLI (no data read)."""
    from vla_robot.demo.plan import FULL, build_phases
    from vla_robot.demo.runner import check_phases

    data = Paths(tmp_path / "demo")
    phases = [p for s in (QUICK, FULL) for p in build_phases(s, tmp_path / "demo")]
    phases += [p for arm in ARMS for p in arm_phases(arm, 0, QUICK, tmp_path / "study", data)]
    trains = [p for p in phases if p.name.startswith("train")]
    assert len(trains) == 2 + len(ARMS) and all(p.check[-1] == "--print-config" for p in trains)
    check_phases(phases)


def test_a_bad_training_setting_stops_the_demo_before_collection(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vla_robot.cli", "demo", "--quick", "--out", str(tmp_path / "demo"),
                           "--set", "vqa_questions=where"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "vqa.questions 'where' is unknown; allowed: all, scene, grounding" in done.stderr
    assert "nothing has run yet" in done.stderr
    assert not (tmp_path / "demo" / "data").exists() and not (tmp_path / "demo" / "logs").exists()
