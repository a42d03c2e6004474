"""The tiny VLM the prior is trained into: a real transformers architecture, random init.

`vla_robot.models.tiny.make_tiny_backbone` writes the family's config, processor and
tokenizer; here its word-level vocabulary is extended with every word the emoji
catalogue and the instruction templates use, so emoji names are real tokens instead of
``<unk>`` (a name the tokenizer cannot spell cannot be learned). The same directory,
untrained, is the study's *no-prior* control.
"""

from __future__ import annotations

from pathlib import Path

from training.prior.synth import vocabulary_words

SUPPORTED_FAMILIES = ("paligemma",)


def extend_vocabulary(model, processor, words: list[str]) -> int:
    """Add missing whole-word tokens (so ``ear`` never matches inside ``heart``); returns how many."""
    from transformers import AddedToken

    tok = processor.tokenizer
    known = tok.get_vocab()
    missing = [w for w in words if w not in known]
    if not missing:
        return 0
    tok.add_tokens(
        [AddedToken(w, single_word=w.isalnum(), normalized=True) for w in missing]
    )
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    return len(missing)


def build_backbone(
    out_dir: str | Path,
    family: str = "paligemma",
    image_size: int = 64,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    patch_size: int | None = None,
):
    """Create the random tiny VLM in ``out_dir`` and return ``(model, processor)`` loaded from it."""
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(
            f"prior pretraining supports family {SUPPORTED_FAMILIES}, got {family!r} "
            "(its prompt/label layout is the one the PaliGemma processor builds from `suffix`)"
        )
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vla_robot.models.tiny import make_tiny_backbone

    out = make_tiny_backbone(
        family, out_dir, image_size=image_size, hidden_size=hidden_size, num_layers=num_layers, seed=seed,
        patch_size=patch_size,
    )
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    extend_vocabulary(model, processor, vocabulary_words())
    return model, processor


def load_backbone(path: str | Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a from_pretrained directory (no config.json)")
    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
