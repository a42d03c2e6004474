"""`vla-robot demo --quick` end to end: real collection, prior, staged LoRA, eval and report.

The numbers of a quick run mean nothing (seconds of training); what is checked is that
every phase runs through its own command, every report artefact exists, the report's
metrics are the eval JSON's, and no validation emoji ever reaches the robot training data.
"""

import json
import math
import re
import subprocess
import sys

import pytest

from sim import emoji as emoji_catalogue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vla_robot.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _names(split):
    return [emoji_catalogue.get_emoji(i).name for i in emoji_catalogue.split_ids(split)]


def _mentions(text, names):
    return [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text.lower())]


def test_every_phase_ran_with_its_own_command(demo_dir):
    manifest = json.loads((demo_dir / "demo_manifest.json").read_text())
    names = [p["name"] for p in manifest["phases"]]
    assert names == ["prior", "collect_grinning_face", "collect_reach", "collect_push", "contact_sheet", "train",
                     "eval_train", "eval_val", "report"]  # the prior trains alongside the collection
    assert all(p["returncode"] == 0 for p in manifest["phases"])
    commands = {p["name"]: p["command"] for p in manifest["phases"]}
    assert " collect " in commands["collect_grinning_face"] and "-m training.prior" in commands["prior"]
    assert "strategy.name=staged" in commands["train"] and " eval " in commands["eval_val"]
    assert "vqa.ratio=0.25" in commands["train"] and "vqa.layout_seed=2" in commands["train"]
    assert "vqa.questions=grounding" in commands["train"] and "model.goal_loss_weight=1.0" in commands["train"]
    assert all("--request-threshold 0.0" in commands[f"eval_{split}"] for split in ("train", "val"))
    assert "model.grounding_question=only" in commands["train"]
    bundle_config = json.loads((demo_dir / "train" / "staged" / "bundle" / "vla_config.json").read_text())
    assert bundle_config["grounding_question"] == "only"  # the eval and deploy ask the prior's question too
    prior, train = (next(p for p in manifest["phases"] if p["name"] == n) for n in ("prior", "train"))
    assert prior["returncode"] == 0 and train["seconds"] > 0
    page = (demo_dir / "report" / "index.html").read_text()
    for p in manifest["phases"]:
        assert p["command"].split()[-1] in page  # the exact commands are printed in the report


def test_report_has_every_artefact(demo_dir):
    report = demo_dir / "report"
    assets = report / "assets"
    assert (report / "index.html").exists() and (report / "README.md").exists()
    assert (assets / "training_curves.png").stat().st_size > 1000
    assert any(p.name.startswith("sheet_") for p in assets.iterdir()), "contact sheet missing"
    assert list(assets.glob("train_*.gif")) and list(assets.glob("val_*.gif")), "rollout GIFs missing"
    page = (report / "index.html").read_text()
    for section in ("Closed-loop metrics", "Training curves", "Collected episodes", "Rollouts", "Reproduce", "VLM prior"):
        assert section in page


def test_report_metrics_equal_eval_json(demo_dir):
    rows = {r["split"]: r for r in json.loads((demo_dir / "report" / "metrics.json").read_text())}
    for split in ("train", "val"):
        raw = json.loads((demo_dir / "eval" / split / "report.json").read_text())["metrics"][split]
        assert rows[split]["episodes"] == raw["episodes"]
        assert rows[split]["exe_sr"] == pytest.approx(raw["exe_sr"])
        assert rows[split]["overall_sr"] == pytest.approx(raw["sr"])
        rec = raw["rec_sr"]
        if rec is None or (isinstance(rec, float) and math.isnan(rec)):
            assert rows[split]["rec_sr"] is None
        else:
            assert rows[split]["rec_sr"] == pytest.approx(rec)


def test_no_validation_emoji_in_robot_training_data(demo_dir):
    """Read every collected episode back from the Zarr stores: only train emojis appear."""
    from vla_robot.data.store import EpisodeStore

    val_names, train_names = _names("val"), _names("train")
    stores = sorted((demo_dir / "data").glob("*.zarr"))
    assert len(stores) == 3
    seen_train = 0
    for path in stores:
        store = EpisodeStore.open(str(path))
        assert store.num_episodes > 0
        for i in store.episode_indices():
            meta = store.episode_meta(i)
            assert not _mentions(meta["instruction"], val_names), (path.name, i, meta["instruction"])
            for key in ("emoji_id", "target"):
                if meta.get(key):
                    assert emoji_catalogue.get_emoji(meta[key]).split == "train"
            for card in (meta.get("extra") or {}).get("cards", []):
                if card in emoji_catalogue.catalogue():
                    assert emoji_catalogue.get_emoji(card).split == "train", (path.name, i, card)
            seen_train += bool(_mentions(meta["instruction"], train_names))
    assert seen_train >= 1  # the GrinningFace store really names train emojis


def test_prior_covered_validation_emojis(demo_dir):
    """The prior is the one place val emojis may appear: its generator draws from the whole catalogue."""
    summary = json.loads((demo_dir / "prior" / "prior_summary.json").read_text())
    assert summary["emojis"]["all"] == len(emoji_catalogue.catalogue())
    assert "identify_val" in summary["probe"]
