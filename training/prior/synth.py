"""Synthetic vision-language data about emojis: the stand-in for internet pretraining.

A hub VLM has seen emojis and their names millions of times; a tiny VLM built here has
seen nothing. These generators give it that knowledge from the emoji font alone, for
**every** emoji of the catalogue, validation ones included, because the point of
GrinningFace is that the VLM knows emojis the robot data never shows. Nothing here
produces robot episodes, so no validation emoji can leak into the robot training set.

Three kinds of question, all answered in a few words:

* ``identify`` -- one card, "which emoji is this?" -> its CLDR name;
* ``where``    -- a table with 2-4 cards, "where is the X?" -> left / right / ordinal;
* ``caption``  -- a table with cards, "caption" -> "cards: X and Y" read left to right.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from sim import emoji as emoji_catalogue

KINDS = ("identify", "where", "caption")
IDENTIFY_QUESTIONS = ("which emoji is this?", "what is on the card?", "what emoji is on this card?")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")


@dataclass(frozen=True)
class VLSample:
    """One (image, question, answer) triple; ``emoji_ids`` are the emojis in the picture."""

    image: Image.Image
    question: str
    answer: str
    kind: str
    emoji_ids: tuple[str, ...]


def all_emoji_ids() -> tuple[str, ...]:
    """Train then validation ids: the prior covers the whole catalogue on purpose."""
    return emoji_catalogue.split_ids("train") + emoji_catalogue.split_ids("val")


def position_word(index: int, n: int) -> str:
    """How a card's place in a left-to-right row is said: left/right for two, else ordinals."""
    if n == 2:
        return ("left", "right")[index]
    if n == 3:
        return ("left", "middle", "right")[index]
    return f"{ORDINALS[index]} from the left"


def vocabulary_words() -> list[str]:
    """Every word the generators and the twin's instructions can emit (for the tokenizer)."""
    import re

    text = " ".join(
        [e.name for e in emoji_catalogue.catalogue().values()]
        + list(IDENTIFY_QUESTIONS)
        + [t.format(name="") for t in emoji_catalogue.TEMPLATES]
        + [position_word(i, n) for n in (2, 3, 4, 5, 6) for i in range(n)]
        + ["where is the ? caption cards : and which emoji is on the"]
    )
    return sorted(set(re.findall(r"\w+|[^\w\s]", text.lower())))


def _card(emoji_id: str, size: int, rng: random.Random) -> Image.Image:
    img = Image.fromarray(emoji_catalogue.card_image(emoji_id))
    if rng.random() < 0.5:
        img = img.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, fillcolor=(245, 245, 240))
    return img.resize((size, size), Image.BILINEAR)


def _table(image_size: int, rng: random.Random) -> Image.Image:
    base = np.array([rng.randint(90, 200), rng.randint(70, 170), rng.randint(50, 140)], dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 6, (image_size, image_size, 1))
    shade = np.linspace(0.85, 1.1, image_size, dtype=np.float32)[:, None, None]
    return Image.fromarray(np.clip(base * shade + noise, 0, 255).astype(np.uint8))


def render_identify(emoji_id: str, image_size: int, rng: random.Random) -> VLSample:
    """A single card filling most of the frame, as in a close-up photo of it."""
    canvas = _table(image_size, rng)
    size = int(image_size * rng.uniform(0.6, 0.95))
    x, y = rng.randint(0, image_size - size), rng.randint(0, image_size - size)
    canvas.paste(_card(emoji_id, size, rng), (x, y))
    e = emoji_catalogue.get_emoji(emoji_id)
    return VLSample(canvas, rng.choice(IDENTIFY_QUESTIONS), e.name, "identify", (emoji_id,))


def render_row(emoji_ids: list[str], image_size: int, rng: random.Random, with_cube: bool = True) -> Image.Image:
    """Cards in a left-to-right row on a table, a bit like the twin's camera sees them."""
    n = len(emoji_ids)
    canvas = _table(image_size, rng)
    slot = image_size / n
    size = int(min(slot * rng.uniform(0.7, 0.9), image_size * 0.45))
    for i, eid in enumerate(emoji_ids):
        x = int(i * slot + rng.uniform(0, max(slot - size, 0)))
        y = int(rng.uniform(image_size * 0.3, image_size - size))
        canvas.paste(_card(eid, size, rng), (min(x, image_size - size), min(y, image_size - size)))
    if with_cube and rng.random() < 0.5:
        c = max(2, image_size // 12)
        cx, cy = rng.randint(0, image_size - c), rng.randint(0, int(image_size * 0.3))
        ImageDraw.Draw(canvas).rectangle([cx, cy, cx + c, cy + c], fill=(200, 30, 30))
    return canvas


def render_where(emoji_ids: list[str], target: int, image_size: int, rng: random.Random) -> VLSample:
    e = emoji_catalogue.get_emoji(emoji_ids[target])
    image = render_row(emoji_ids, image_size, rng)
    return VLSample(image, f"where is the {e.name}?", position_word(target, len(emoji_ids)), "where", tuple(emoji_ids))


def render_caption(emoji_ids: list[str], image_size: int, rng: random.Random) -> VLSample:
    names = " and ".join(emoji_catalogue.get_emoji(i).name for i in emoji_ids)
    image = render_row(emoji_ids, image_size, rng)
    return VLSample(image, "caption", f"cards : {names}", "caption", tuple(emoji_ids))


class SyntheticVL:
    """An endless, seeded stream of samples over ``emoji_ids`` with the given kind weights."""

    def __init__(
        self,
        emoji_ids: tuple[str, ...],
        image_size: int,
        seed: int = 0,
        weights: dict[str, float] | None = None,
        max_cards: int = 3,
    ) -> None:
        weights = dict(weights or {"identify": 0.5, "where": 0.35, "caption": 0.15})
        unknown = set(weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown sample kinds {sorted(unknown)}; allowed: {KINDS}")
        if len(emoji_ids) < 2:
            raise ValueError("need at least 2 emojis to build multi-card questions")
        if not 2 <= max_cards <= len(ORDINALS):
            raise ValueError(f"max_cards must be in [2, {len(ORDINALS)}], got {max_cards}")
        self.emoji_ids = tuple(emoji_ids)
        self.image_size = image_size
        self.rng = random.Random(seed)
        self.kinds = list(weights)
        self.weights = [weights[k] for k in self.kinds]
        self.max_cards = max_cards

    def sample(self) -> VLSample:
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "identify":
            return render_identify(rng.choice(self.emoji_ids), self.image_size, rng)
        n = rng.randint(2, min(self.max_cards, len(self.emoji_ids)))
        ids = rng.sample(self.emoji_ids, n)
        if kind == "where":
            return render_where(ids, rng.randrange(n), self.image_size, rng)
        return render_caption(ids, self.image_size, rng)

    def batch(self, n: int) -> list[VLSample]:
        return [self.sample() for _ in range(n)]
