"""The synthetic VL generator: covers every emoji (val too), answers are right, names are tokens."""

import random

import numpy as np

from sim import emoji as emoji_catalogue
from training.prior.synth import SyntheticVL, all_emoji_ids, position_word, render_where, vocabulary_words


def test_stream_covers_train_and_val_emojis():
    stream = SyntheticVL(all_emoji_ids(), image_size=32, seed=0)
    seen = set()
    for s in stream.batch(600):
        seen.update(s.emoji_ids)
        assert s.image.size == (32, 32)
        assert s.answer and s.question
    assert set(emoji_catalogue.split_ids("val")) <= seen
    assert set(emoji_catalogue.split_ids("train")) <= seen


def test_identify_answer_is_the_cldr_name():
    stream = SyntheticVL(all_emoji_ids(), image_size=32, seed=1, weights={"identify": 1.0})
    for s in stream.batch(20):
        assert s.kind == "identify"
        assert s.answer == emoji_catalogue.get_emoji(s.emoji_ids[0]).name


def test_where_answer_matches_the_card_drawn_there():
    """The card named in the question is really on the side the answer says (pixel check)."""
    rng = random.Random(3)
    ids = ["grinning_face", "frog"]
    s = render_where(ids, 1, 64, rng)
    assert s.answer == "right" and "frog" in s.question
    img = np.asarray(s.image).astype(float)
    # cards are near-white; the right half must contain card pixels
    assert (img[:, 32:].min(axis=2) > 200).sum() > 50
    assert position_word(2, 4) == "third from the left"


def test_every_name_is_in_the_prior_vocabulary():
    words = set(vocabulary_words())
    for e in emoji_catalogue.catalogue().values():
        for w in e.name.replace("-", " - ").split():
            assert w in words, (e.id, w)


def test_bad_kind_is_rejected():
    import pytest

    with pytest.raises(ValueError, match="unknown sample kinds"):
        SyntheticVL(all_emoji_ids(), 32, weights={"poem": 1.0})
