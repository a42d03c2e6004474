"""Tiny random backbones of the real VLM classes, saved as complete local directories.

Why: tests, the demo and CI must exercise the exact `from_pretrained` path a user runs
with a hub id, without ever touching the hub. `make_tiny_backbone` writes config,
random weights, tokenizer and the family's own image processor into a directory that
`transformers` loads like any downloaded checkpoint.
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("paligemma", "qwen2_vl", "qwen2_5_vl", "idefics3")

# Words the twin's instructions and VQA questions use; everything else maps to <unk>.
_WORDS = (
    "put place move push pick the a an cube block onto on to at of in is which what where emoji card "
    "left right middle center top bottom front back near far red green blue yellow face smiling "
    "grinning cat dog heart star fire thumbs up down rocket robot arm gripper open close yes no "
    "there how many cards table answer question user assistant image picture show see this that "
    "with and or it its from between first second third . , ? ! : 0 1 2 3 4 5 6 7 8 9"
).split()
_SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>"]
_FAMILY_TOKENS = {
    "paligemma": ["<image>"],
    "qwen2_vl": ["<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"],
    "qwen2_5_vl": ["<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"],
    "idefics3": ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"],
}
# OpenVLA maps the 256 action bins onto the last 256 vocabulary ids; reserve them as fillers.
_N_FILLER = 256


def _tokenizer(family: str):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = _SPECIAL + _FAMILY_TOKENS[family]
    vocab_list = specials + _WORDS + [f"<filler_{i}>" for i in range(_N_FILLER)]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=_FAMILY_TOKENS[family],
    )
    tok.padding_side = "left"
    return tok


def make_tiny_backbone(
    family: str,
    out_dir: str | Path,
    image_size: int = 32,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    patch_size: int | None = None,
    tie_word_embeddings: bool | None = None,
) -> Path:
    """Write a tiny random `family` VLM (config + safetensors + processor) to `out_dir`.

    `patch_size` defaults to a quarter of the image side (16 image tokens per camera).
    `tie_word_embeddings=False` gives the LM its own output layer (as Qwen2.5-VL-7B has), which
    the robot path never uses; None keeps the family's default.
    The result loads with `AutoModelForImageTextToText.from_pretrained(out_dir)` and
    `AutoProcessor.from_pretrained(out_dir)`, exactly as a hub checkpoint would.
    """
    import torch

    from vla_robot.models.processors import save_processor

    if family not in FAMILIES:
        raise ValueError(f"unknown backbone family {family!r}; allowed: {', '.join(FAMILIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = _tokenizer(family)
    builder = {"paligemma": _paligemma, "qwen2_vl": _qwen2_vl, "qwen2_5_vl": _qwen2_5_vl, "idefics3": _idefics3}[family]
    model, processor = builder(tok, image_size, hidden_size, num_layers, patch_size)
    if tie_word_embeddings is not None and tie_word_embeddings != model.config.tie_word_embeddings:
        model.config.tie_word_embeddings = tie_word_embeddings
        for sub in ("text_config",):
            if getattr(model.config, sub, None) is not None:
                setattr(getattr(model.config, sub), "tie_word_embeddings", tie_word_embeddings)
        torch.manual_seed(seed)
        model = type(model)(model.config).eval()  # rebuilt so that lm_head gets its own weight
    model.save_pretrained(out)
    save_processor(processor, out)
    return out


def _image_processor_class(name: str):
    """The PIL image processor where transformers has one (no torchvision needed), else the default class."""
    import transformers

    return getattr(transformers, name + "Pil", None) or getattr(transformers, name)


def _text_dims(hidden_size: int, num_layers: int, vocab: int) -> dict:
    heads = 2
    return dict(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=hidden_size // heads,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )


def _vision_dims(hidden_size: int, num_layers: int, image_size: int, patch: int) -> dict:
    return dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
    )


def _paligemma(tok, image_size, hidden, layers, patch_size=None):
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers import SiglipVisionConfig

    SiglipImageProcessor = _image_processor_class("SiglipImageProcessor")
    patch = patch_size or max(image_size // 4, 1)
    image_proc = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    image_proc.image_seq_length = (image_size // patch) ** 2
    processor = PaliGemmaProcessor(image_processor=image_proc, tokenizer=tok)
    vocab = len(processor.tokenizer)
    cfg = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**_vision_dims(hidden, layers, image_size, patch)),
        text_config=GemmaConfig(**_text_dims(hidden, layers, vocab)),
        image_token_id=processor.image_token_id,
        projection_dim=hidden,
    )
    cfg.vision_config.projection_dim = hidden
    cfg.text_config.num_image_tokens = image_proc.image_seq_length
    return PaliGemmaForConditionalGeneration(cfg).eval(), processor


def _qwen2_vl(tok, image_size, hidden, layers, patch_size=None, family="qwen2_vl"):
    import transformers

    from vla_robot.models.processors import qwen2_vl_processor

    Qwen2VLImageProcessor = _image_processor_class("Qwen2VLImageProcessor")
    patch, merge = patch_size or max(image_size // 4, 1), 2
    pixels = image_size * image_size
    image_proc = Qwen2VLImageProcessor(
        min_pixels=pixels, max_pixels=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=2
    )
    image_proc.size = {"shortest_edge": pixels, "longest_edge": pixels}
    processor = qwen2_vl_processor(image_proc, tok, family)
    text = _text_dims(hidden, layers, len(tok))
    head_dim = text["head_dim"]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(head_dim)}
    vision = dict(depth=layers, hidden_size=hidden, num_heads=2, patch_size=patch, spatial_merge_size=merge,
                  temporal_patch_size=2)
    if family == "qwen2_vl":
        vision["embed_dim"] = hidden
        config_cls, model_cls = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
    else:
        vision.update(intermediate_size=hidden * 2, out_hidden_size=hidden, window_size=patch * merge * 2,
                      fullatt_block_indexes=[layers - 1])
        config_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
    cfg = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    return model_cls(cfg).eval(), processor


def _qwen2_5_vl(tok, image_size, hidden, layers, patch_size=None):
    return _qwen2_vl(tok, image_size, hidden, layers, patch_size, family="qwen2_5_vl")


def _mrope(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half - 2 * (half // 3)
    return [t, half // 3, half // 3]


def _idefics3(tok, image_size, hidden, layers, patch_size=None):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig

    Idefics3ImageProcessor = _image_processor_class("Idefics3ImageProcessor")
    patch, scale = patch_size or max(image_size // 4, 1), 2
    image_proc = Idefics3ImageProcessor(
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_image_splitting=False,
    )
    seq_len = (image_size // patch) ** 2 // scale**2
    processor = Idefics3Processor(image_processor=image_proc, tokenizer=tok, image_seq_len=seq_len)
    cfg = Idefics3Config(
        vision_config=_vision_dims(hidden, layers, image_size, patch),
        text_config=LlamaConfig(**_text_dims(hidden, layers, len(tok))),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
    )
    return Idefics3ForConditionalGeneration(cfg).eval(), processor
