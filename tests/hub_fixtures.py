"""Checkpoint directories laid out as on the Hugging Face hub, with tiny random weights.

For google/paligemma-3b-pt-224, Qwen/Qwen2.5-VL-3B-Instruct and HuggingFaceTB/SmolVLM-Instruct:
the files a download gives (config.json, generation_config.json, model.safetensors,
preprocessor_config.json, processor_config.json, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, vocab.json/merges.txt, chat_template.json) with the real models'
processor settings (image size, patch size, image splitting, tokens per image, normalisation)
and vision geometry, but a few hidden units and one layer. The tokenizer is a tiny byte-level
BPE trained here, offline, on a few robot sentences, carrying the family's special tokens.

Why: `vla_robot.models.tiny` builds its processors in code; only files like these exercise
what `from_pretrained` does with a real download (which processor class the JSON names, which
settings it reads), and they carry the settings that decide how many tokens a camera frame
becomes. Nothing here touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "put the cube on the grinning face", "place the block onto the cat card", "move the red cube to the left",
    "which emoji is at the right?", "where is the cube?", "how many cards are on the table?", "pick up the block",
    "push the cube to the middle of the table", "the robot arm opens the gripper", "answer the question",
]
HUB = {
    "paligemma": "google/paligemma-3b-pt-224",
    "qwen2_5_vl": "Qwen/Qwen2.5-VL-3B-Instruct",
    "idefics3": "HuggingFaceTB/SmolVLM-Instruct",
}


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def train_tokenizer(specials: list[str], extra: list[str], vocab_size: int = 400, sentencepiece: bool = False):
    """A BPE trained on SENTENCES; `specials` first (ids 0..), `extra` added as special tokens.

    Byte-level (GPT-2 style: Qwen, SmolVLM), or `sentencepiece=True` as Gemma's: spaces become
    "▁", unknown characters fall back to <0xNN> byte tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if sentencepiece:
        byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.normalizer = normalizers.Replace(" ", "\u2581")
        tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
        alphabet = sorted(set("".join(SENTENCES).replace(" ", "\u2581")))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=specials + extra + byte_tokens,
                                      initial_alphabet=alphabet, show_progress=False)
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + extra,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES, trainer)
    if sentencepiece:  # Gemma's tokenizer.json prepends <bos> (add_bos_token)
        from tokenizers import processors

        bos = tok.token_to_id("<bos>")
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                           special_tokens=[("<bos>", bos)])
    return tok


def _tokenizer_files(out: Path, tok, tokenizer_class: str, special_map: dict, extra_config: dict) -> dict[str, int]:
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out))  # vocab.json + merges.txt, as the hub's BPE tokenizers ship them
    ids = {t: tok.token_to_id(t) for t in tok.get_vocab() if t.startswith("<") and not t.startswith("<0x")}
    added = {str(i): {"content": t, "special": True, "normalized": False, "lstrip": False, "rstrip": False,
                      "single_word": False} for t, i in sorted(ids.items(), key=lambda x: x[1])}
    _write(out / "tokenizer_config.json", {"tokenizer_class": tokenizer_class, "added_tokens_decoder": added,
                                           "clean_up_tokenization_spaces": False, "model_max_length": 8192,
                                           **special_map, **extra_config})
    _write(out / "special_tokens_map.json", special_map)
    return ids


def _save_model(model, out: Path) -> None:
    model.save_pretrained(out)  # config.json, generation_config.json, model.safetensors


def paligemma_224(out: str | Path, hidden: int = 16) -> Path:
    """google/paligemma-3b-pt-224: SigLIP 224 px / patch 14 → 256 image tokens, Gemma tokenizer specials."""
    import torch
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, SiglipVisionConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>"], ["<image>"], sentencepiece=True)
    ids = _tokenizer_files(out, tok, "GemmaTokenizer",
                           {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                            "additional_special_tokens": ["<image>"]},
                           {"add_bos_token": True, "add_eos_token": False, "padding_side": "left",
                            "processor_class": "PaliGemmaProcessor"})
    _write(out / "preprocessor_config.json", {
        "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_seq_length": 256, "processor_class": "PaliGemmaProcessor", "resample": 3,
        "rescale_factor": 1 / 255, "size": {"height": 224, "width": 224}})
    torch.manual_seed(0)
    cfg = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=224, patch_size=14,
                                         projection_dim=hidden, vision_use_head=False),
        text_config=GemmaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                head_dim=hidden // 2, num_image_tokens=256, pad_token_id=ids["<pad>"],
                                bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"]),
        image_token_id=ids["<image>"], projection_dim=hidden)
    _save_model(PaliGemmaForConditionalGeneration(cfg).eval(), out)
    return out


def qwen2_5_vl_3b(out: str | Path, hidden: int = 16) -> Path:
    """Qwen/Qwen2.5-VL-3B-Instruct: dynamic resolution, patch 14, 2x2 merge (one token per 28x28 pixels),
    3136..12845056 pixels, CLIP normalisation, the chat special tokens."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chat = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vision = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = train_tokenizer(chat, vision)
    ids = _tokenizer_files(out, tok, "Qwen2Tokenizer",
                           {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                            "additional_special_tokens": chat[1:] + vision},
                           {"bos_token": None, "errors": "replace", "split_special_tokens": False})
    _write(out / "chat_template.json", {"chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                                                         "{{ m['content'] }}<|im_end|>\n{% endfor %}"})
    _write(out / "preprocessor_config.json", {
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"})
    torch.manual_seed(0)
    head_dim = hidden // 2
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=head_dim,
                         max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": [head_dim // 2 - 2 * (head_dim // 6), head_dim // 6,
                                                            head_dim // 6]}),
        vision_config=dict(depth=1, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[0],
                           out_hidden_size=hidden),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    _save_model(Qwen2_5_VLForConditionalGeneration(cfg).eval(), out)
    return out


def smolvlm_instruct(out: str | Path, hidden: int = 16) -> Path:
    """HuggingFaceTB/SmolVLM-Instruct: SigLIP 384 px / patch 14 → 729 patches, pixel shuffle 3 → 81 tokens per
    tile, image splitting ON: frames are resized to a 1536 px longest edge and cut into 384 px tiles."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, LlamaConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    image = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    grid = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    tok = train_tokenizer(specials, image + grid)
    ids = _tokenizer_files(out, tok, "GPT2Tokenizer",
                           {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "pad_token": "<|im_end|>",
                            "unk_token": "<|endoftext|>", "additional_special_tokens": image[:3]},
                           {"add_prefix_space": False, "processor_class": "Idefics3Processor"})
    _write(out / "added_tokens.json", {t: ids[t] for t in image + grid})
    _write(out / "processor_config.json", {"image_seq_len": 81, "processor_class": "Idefics3Processor"})
    _write(out / "preprocessor_config.json", {
        "do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
        "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "Idefics3ImageProcessor", "max_image_size": {"longest_edge": 384},
        "processor_class": "Idefics3Processor", "resample": 1, "rescale_factor": 1 / 255,
        "size": {"longest_edge": 1536}})
    torch.manual_seed(0)
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                           num_attention_heads=2, image_size=384, patch_size=14),
        text_config=LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                head_dim=hidden // 2, pad_token_id=ids["<|im_end|>"],
                                bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"]),
        image_token_id=ids["<image>"], scale_factor=3)
    _save_model(Idefics3ForConditionalGeneration(cfg).eval(), out)
    return out


WRITERS = {"paligemma": paligemma_224, "qwen2_5_vl": qwen2_5_vl_3b, "idefics3": smolvlm_instruct}
