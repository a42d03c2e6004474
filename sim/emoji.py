"""The emoji catalogue of the GrinningFace task: which emojis exist, their names, the split, the card art.

The *characters* are chosen here (visually distinct, single code point, drawn in colour by
Noto Color Emoji); their *names* come from Unicode CLDR via the ``emoji`` package, so the
instruction text matches what a VLM saw on the internet. The train/val split is fixed so
validation emojis never appear in demonstrations: a held-out set is what makes the task
diagnose whether VLM priors survive VLA training.

Run ``python -m sim.list_emojis`` to print the catalogue.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import emoji as emoji_data
import numpy as np

FONT_PATH = Path(os.environ.get("VLA_EMOJI_FONT", "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"))
FONT_SIZE = 109  # the only size the CBDT bitmap font ships
TEXTURE_SIZE = 128
CARD_STYLE = "v2"  # bump when the card drawing changes, so stale cached PNGs are not reused

# 40 train, 20 val: smileys, animals and food; no skin tones, no ZWJ sequences, no flags.
TRAIN_CHARS = (
    "😀😂😍😎😡😱😴🤔🥶🤡👻💀👽🤖💩🐶🐱🐭🐸🐵"
    "🐷🐮🦁🐯🐼🐧🐢🐙🦋🐝🍎🍌🍇🍉🍓🍕🍔🌮🍩🎂"
)
VAL_CHARS = "😇🤠🥳😭🤯🐰🐻🦊🐨🦄🐳🦀🍒🍋🥑🥕🌽🍪🍦🧀"

SPLITS = ("train", "val")

TEMPLATES = (
    "put the cube on the {name}",
    "place the block onto the {name} card",
    "pick up the cube and put it on the {name}",
    "move the cube to the card with the {name}",
    "put the block on the {name} emoji",
)


@dataclass(frozen=True)
class Emoji:
    """One card picture: ``id`` is the CLDR short name in snake case (``grinning_face``)."""

    char: str
    id: str
    name: str
    split: str

    @property
    def codepoint(self) -> str:
        return f"U+{ord(self.char):04X}"


def _make(char: str, split: str) -> Emoji:
    data = emoji_data.EMOJI_DATA.get(char)
    if data is None:
        raise ValueError(f"{char!r} ({ord(char):X}) is not in the emoji package's data")
    short = data["en"].strip(":")
    return Emoji(char=char, id=short.lower(), name=short.replace("_", " ").lower(), split=split)


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, Emoji]:
    """All emojis by id, train first, in a fixed order."""
    items = [_make(c, "train") for c in TRAIN_CHARS] + [_make(c, "val") for c in VAL_CHARS]
    return {e.id: e for e in items}


def split_ids(split: str) -> tuple[str, ...]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return tuple(e.id for e in catalogue().values() if e.split == split)


def get_emoji(emoji_id: str) -> Emoji:
    """Look up by id (``grinning_face``), name (``grinning face``) or the character itself."""
    cat = catalogue()
    key = emoji_id.strip().lower().replace(" ", "_")
    if key in cat:
        return cat[key]
    for e in cat.values():
        if e.char == emoji_id:
            return e
    raise ValueError(
        f"unknown emoji {emoji_id!r}; valid ids are the {len(cat)} in sim.emoji.catalogue() "
        f"(print them with `python -m sim.list_emojis`), e.g. {', '.join(list(cat)[:4])}"
    )


def instruction(name: str, template_index: int, templates: tuple[str, ...] = TEMPLATES) -> str:
    return templates[template_index % len(templates)].format(name=name)


def _cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "vla-robot" / "emoji"


@functools.lru_cache(maxsize=None)
def card_png(emoji_id: str, size: int = TEXTURE_SIZE) -> bytes:
    """PNG bytes of a white printed card with the emoji centred, cached on disk and in memory.

    Rendered with Pillow from the Noto Color Emoji bitmap font (size 109, embedded colour),
    so no image asset is shipped with the project.
    """
    e = get_emoji(emoji_id)
    path = _cache_dir() / f"{e.id}_{size}_{CARD_STYLE}.png"
    if path.exists():
        return path.read_bytes()
    from PIL import Image, ImageDraw, ImageFont

    if not FONT_PATH.exists():
        raise FileNotFoundError(
            f"emoji font {FONT_PATH} missing: install the Debian package fonts-noto-color-emoji "
            "(make setup does) or point VLA_EMOJI_FONT at NotoColorEmoji.ttf"
        )
    font = ImageFont.truetype(str(FONT_PATH), FONT_SIZE)
    glyph = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
    ImageDraw.Draw(glyph).text((80, 80), e.char, font=font, embedded_color=True, anchor="mm")
    bbox = glyph.getbbox()
    if bbox is None:
        raise RuntimeError(f"font {FONT_PATH} drew nothing for {e.id} ({e.codepoint})")
    glyph = glyph.crop(bbox)
    card = Image.new("RGB", (size, size), (245, 245, 240))
    border = max(1, size // 40)  # a thin grey edge keeps white emojis (ghost, skull) visible as cards
    ImageDraw.Draw(card).rectangle([0, 0, size - 1, size - 1], outline=(150, 150, 150), width=border)
    inner = int(size * 0.78)
    scale = inner / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.LANCZOS)
    card.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2), glyph)
    buf = io.BytesIO()
    card.save(buf, format="PNG")
    data = buf.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs speed
    return data


def card_image(emoji_id: str, size: int = TEXTURE_SIZE) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(card_png(emoji_id, size))).convert("RGB"))


def main() -> None:
    for split in SPLITS:
        print(f"[{split}]")
        for eid in split_ids(split):
            e = get_emoji(eid)
            print(f"  {e.char}  {e.codepoint:8s} {e.id:32s} {e.name}")


if __name__ == "__main__":
    main()
