"""Prior pretraining on a tiny real PaliGemma: learns, saves a from_pretrained dir, probe is sane."""

import json

import pytest
import torch

from training.prior.pretrain import PriorConfig, pretrain
from training.prior.synth import SyntheticVL, all_emoji_ids


def _fixed_loss(model, processor, samples):
    batch = processor(
        images=[s.image for s in samples],
        text=[processor.image_token + s.question for s in samples],
        suffix=[s.answer for s in samples],
        return_tensors="pt",
        padding="longest",
    )
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prior")
    cfg = PriorConfig(out=str(out), image_size=32, hidden_size=32, steps=60, vision_warmup_steps=20, batch_size=16,
                      warmup=5, probe_per_emoji=1, twin_scenes=20, twin_focus_steps=10)
    summary = pretrain(cfg, progress=False)
    return out, summary


def test_prior_saves_a_loadable_vlm_whose_tokenizer_spells_every_name(prior_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from sim import emoji as emoji_catalogue

    out, summary = prior_dir
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == "PaliGemmaForConditionalGeneration"
    unk = processor.tokenizer.unk_token
    for e in emoji_catalogue.catalogue().values():
        assert unk not in processor.tokenizer.tokenize(e.name), e.name
    assert json.loads((out / "prior_summary.json").read_text())["config"]["steps"] == 60
    records = [json.loads(line) for line in (out / "prior_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(-20, 0)) + list(range(1, 71))
    assert all("vision_loss" in r for r in records[:20]) and all("vision_accuracy" in r for r in records[20:80])
    assert [r["phase"] for r in records[20:]] == ["mix"] * 60 + ["twin_focus"] * 10
    # the focus phase holds half the peak rate, then decays over its last quarter
    assert records[80]["lr"] == pytest.approx(0.5 * PriorConfig.lr) == records[86]["lr"]
    assert records[-1]["lr"] < records[86]["lr"]


def test_prior_training_lowers_the_vqa_loss(prior_dir):
    from training.prior.backbone import load_backbone

    out, _ = prior_dir
    samples = SyntheticVL(all_emoji_ids(), 32, seed=99).batch(32)
    trained, processor = load_backbone(out)
    fresh_dir = out.parent / "fresh"
    from training.prior.backbone import build_backbone

    fresh, fresh_proc = build_backbone(fresh_dir, image_size=32, hidden_size=32)
    assert _fixed_loss(trained.eval(), processor, samples) < 0.7 * _fixed_loss(fresh.eval(), fresh_proc, samples)


def test_probe_reports_both_splits_with_chance_levels(prior_dir):
    _, summary = prior_dir
    p = summary["probe"]
    for key in ("identify_train", "identify_val", "where_train", "where_val"):
        assert 0.0 <= p[key] <= 1.0
    assert p["identify_chance"] == pytest.approx(1 / 60)
    assert p["where_chance"] == 0.5


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="image_size"):
        PriorConfig(image_size=30)


def test_probe_cli_reads_a_prior_and_probes_twin_scenes(prior_dir, tmp_path):
    from training.prior.probe_cli import main

    out, summary = prior_dir
    result_path = tmp_path / "probe.json"
    assert main([str(out), "--per-emoji", "1", "--twin-scenes", "2", "--layout-seed", "2", "--out", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    for kind in ("where", "which", "instruction"):  # "put the cube on the X" -> side: what a policy's prompt asks
        assert result[f"twin_{kind}_train"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # 2 scenes x 2 cards per split
    assert result["identify_chance"] == pytest.approx(1 / 60)
    with pytest.raises(FileNotFoundError, match="neither"):
        main([str(tmp_path)])


def test_twin_scenes_cover_both_splits_with_valid_answers(tmp_path):
    """Twin renders for the prior come from train and val emojis; answers are positions or names."""
    from training.prior.twin_scenes import TwinSceneVL, render_twin_scenes

    scenes = render_twin_scenes(2, 32, n_cards=2, seed=0, layout_seed=2)
    assert len(scenes) == 4  # 2 per split
    from sim import emoji as cat

    assert {cat.get_emoji(scene.order[0]).split for scene in scenes} == {"train", "val"}
    assert all(scene.image_xs == sorted(scene.image_xs) for scene in scenes)
    sample = TwinSceneVL(scenes, seed=1).sample()
    assert sample.answer in ("left", "right") or sample.answer in [e.name for e in cat.catalogue().values()]


def test_vision_warmup_teaches_the_tower_emojis_and_touches_nothing_else(tmp_path):
    """The classification warm-up must move the vision tower (and only it) towards recognising cards."""
    from training.prior.backbone import build_backbone
    from training.prior.vision_warmup import EmojiClassifierAux

    torch.manual_seed(0)
    model, processor = build_backbone(tmp_path / "vlm", image_size=32, hidden_size=32)
    ids = all_emoji_ids()[:4]
    aux = EmojiClassifierAux(model, processor, ids, 32, seed=0, batch_size=16)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(list(model.parameters()) + aux.parameters(), lr=3e-3)
    for _ in range(120):
        loss, _ = aux.loss_and_accuracy()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    aux.batch_size = 64
    with torch.no_grad():
        _, accuracy = aux.loss_and_accuracy()
    assert accuracy > 0.6, f"4-way card classification after warm-up: {accuracy:.2f} (chance 0.25)"
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.vision_tower.") for n in changed), sorted(changed)[:5]


def test_twin_halves_loss_names_the_card_on_each_side(tmp_path):
    """The twin-scene signal asks for the left card's emoji from the left half and the right card's from the right."""
    from training.prior.backbone import build_backbone
    from training.prior.twin_scenes import render_twin_scenes
    from training.prior.vision_warmup import EmojiClassifierAux

    model, processor = build_backbone(tmp_path / "vlm", image_size=32, hidden_size=32)
    scenes = render_twin_scenes(3, 32, n_cards=2, seed=0, layout_seed=2)
    aux = EmojiClassifierAux(model, processor, all_emoji_ids(), 32, seed=0, batch_size=8, twin_scenes=scenes)
    assert aux.twin_scenes, "the demo layout puts one card on each side of the image centre"
    loss, _ = aux.loss_and_accuracy()
    assert aux.twin_accuracy is not None and torch.isfinite(loss)
    # swapping which half is labelled with which card must change the loss: the halves are told apart
    swapped = [type(sc)(sc.image, sc.order[::-1], sc.image_xs) for sc in aux.twin_scenes]
    torch.manual_seed(0)
    aux.rng.seed(5)
    straight = float(aux._twin_halves_loss()[0])
    aux.twin_scenes = swapped
    aux.rng.seed(5)
    assert float(aux._twin_halves_loss()[0]) != straight


def test_position_loss_teaches_each_patch_its_place(tmp_path):
    """Without it the LM cannot address "the card on the left"; with it the tower's patches name their grid cell."""
    from training.prior.backbone import build_backbone
    from training.prior.vision_warmup import EmojiClassifierAux

    torch.manual_seed(0)
    model, processor = build_backbone(tmp_path / "vlm", image_size=32, hidden_size=32)
    aux = EmojiClassifierAux(model, processor, all_emoji_ids(), 32, seed=0, batch_size=8, position_weight=1.0)
    opt = torch.optim.AdamW(list(model.model.vision_tower.parameters()) + aux.parameters(), lr=3e-3)
    pixels = processor.image_processor([s.image for s in aux.stream.batch(8)], return_tensors="pt")["pixel_values"]
    for _ in range(60):
        loss = aux._position_loss(model.model.vision_tower(pixel_values=pixels).last_hidden_state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tokens = model.model.vision_tower(pixel_values=pixels).last_hidden_state.detach()
    aux._position_loss(tokens)
    assert aux.position_accuracy > 0.9, f"16-way patch position after 60 steps: {aux.position_accuracy:.2f}"
    aux._position_loss(tokens.flip(1))  # the same features in reversed order no longer sit where they say
    assert aux.position_accuracy < 0.2
    _, accuracy = aux.loss_and_accuracy()
    assert aux.position_accuracy is not None and 0 <= accuracy <= 1
