"""Load a backbone's own processor, with one documented workaround.

transformers 5 makes the Qwen2-VL processor require a video processor, and the
video processor requires torchvision. A robot policy never feeds video, so when
torchvision is missing we assemble the same `Qwen2VLProcessor` from its tokenizer
and image processor instead of failing.
"""

from __future__ import annotations

from pathlib import Path


QWEN_FAMILIES = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}


def qwen2_vl_processor(image_processor, tokenizer, family: str = "qwen2_vl"):
    """A real `Qwen2VLProcessor` / `Qwen2_5_VLProcessor` without a video processor (images-only use)."""
    import transformers

    cls = getattr(transformers, QWEN_FAMILIES[family])
    try:
        return cls(image_processor=image_processor, tokenizer=tokenizer)
    except (AttributeError, ImportError, TypeError):
        proc = cls.__new__(cls)
        proc.check_argument_for_proper_class = lambda name, arg: None
        cls.__init__(proc, image_processor=image_processor, tokenizer=tokenizer, video_processor=None)
        del proc.check_argument_for_proper_class
        return proc


def load_processor(family: str, path: str | Path, trust_remote_code: bool = False):
    """The family's processor from a hub id or a local directory."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    if family not in QWEN_FAMILIES:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        if hasattr(processor, "image_processor"):
            return processor
    except (AttributeError, ImportError, TypeError, ValueError):
        pass
    image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    return qwen2_vl_processor(image_processor, tokenizer, family)


def save_processor(processor, out_dir: str | Path) -> None:
    """Save a processor so that `load_processor` restores it (also without a video processor)."""
    if getattr(processor, "video_processor", "absent") is None:
        processor.tokenizer.save_pretrained(out_dir)
        processor.image_processor.save_pretrained(out_dir)
        return
    processor.save_pretrained(out_dir)


def apply_image_processor_settings(processor, settings: dict) -> None:
    """Override settings of the checkpoint's image processor (e.g. SmolVLM's `do_image_splitting`).

    The processor is saved into the bundle after this, so deployment preprocesses exactly as
    training did. Qwen2-VL keeps `min_pixels`/`max_pixels` twice (also as `size`); both are set.
    """
    image_processor = processor.image_processor
    for key, value in settings.items():
        if not hasattr(image_processor, key):
            known = sorted(k for k, v in vars(image_processor).items() if not k.startswith("_")
                           and isinstance(v, (bool, int, float, str, dict, list, type(None))))
            raise ValueError(f"model.image_processor.{key}: {type(image_processor).__name__} has no setting "
                             f"{key!r}; its settings: {known}")
        setattr(image_processor, key, value)
    size = getattr(image_processor, "size", None)
    if isinstance(size, dict) and {"shortest_edge", "longest_edge"} <= set(size):
        pixels = {"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}
        image_processor.size = {**size, **{pixels[k]: v for k, v in settings.items() if k in pixels}}
