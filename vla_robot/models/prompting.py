"""Per-family prompt formats and the one image/text preprocessing path for training and deployment.

Every family gets its own processor (tokenizer + image processor from the checkpoint);
this module only decides where the image placeholders and the instruction go. Camera
frames are resized to the bundle's `image_size` first, so a runtime that feeds raw
camera frames sees exactly what training saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla_robot.models.grounding import with_grounding_question


def format_prompt(family: str, instruction: str, num_images: int) -> str:
    """The text the family's processor expects for `num_images` images and one instruction."""
    instruction = " ".join(instruction.split())
    if family == "paligemma":
        return "<image>" * num_images + instruction
    if family in ("qwen2_vl", "qwen2_5_vl"):
        images = "<|vision_start|><|image_pad|><|vision_end|>" * num_images
        return f"<|im_start|>user\n{images}{instruction}<|im_end|>\n<|im_start|>assistant\n"
    if family == "idefics3":
        return f"<|im_start|>User:{'<image>' * num_images}{instruction}<end_of_utterance>\nAssistant:"
    raise ValueError(f"unknown backbone family {family!r}")


def crop_box(height: int, width: int, scale: float) -> tuple[int, int]:
    """(crop height, crop width) covering `scale` of the image area with its aspect ratio."""
    side = scale ** 0.5
    return max(1, round(height * side)), max(1, round(width * side))


def center_crop(images: torch.Tensor, scale: float) -> torch.Tensor:
    """(..., H, W) → the centred crop covering `scale` of the area (the eval twin of the random crop)."""
    if scale >= 1.0:
        return images
    h, w = images.shape[-2:]
    ch, cw = crop_box(h, w, scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    return images[..., top:top + ch, left:left + cw]


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 → (B, 3, size, size) uint8 (antialiased bilinear)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"camera images must be uint8 (B, 3, H, W); got {tuple(images.shape)} {images.dtype}")
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


class VLAPreprocessor:
    """Images (per camera) + instructions → backbone inputs, left-padded so appended tokens end every row."""

    def __init__(self, family: str, processor, cameras: tuple[str, ...], image_size: int, crop_scale: float = 1.0,
                 grounding_question: str = "off"):
        self.family, self.processor, self.cameras, self.image_size = family, processor, tuple(cameras), image_size
        self.crop_scale, self.grounding_question = crop_scale, grounding_question
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the backbone tokenizer has no pad token; set one before training")

    def __call__(self, images: dict[str, torch.Tensor], instructions: list[str],
                 center: bool = True) -> dict[str, torch.Tensor]:
        """`center=False` skips the centre crop: training frames that were already randomly cropped."""
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise KeyError(f"missing camera images {missing}; the model expects {list(self.cameras)}")
        scale = self.crop_scale if center else 1.0
        per_cam = [resize_uint8(center_crop(images[c].cpu(), scale), self.image_size) for c in self.cameras]
        batch = per_cam[0].shape[0]
        if len(instructions) != batch:
            raise ValueError(f"got {len(instructions)} instructions for a batch of {batch} images")
        nested = [[cam[i].permute(1, 2, 0).numpy() for cam in per_cam] for i in range(batch)]
        instructions = [with_grounding_question(s, self.grounding_question) for s in instructions]
        texts = [format_prompt(self.family, s, len(self.cameras)) for s in instructions]
        enc = self.processor(text=texts, images=nested, return_tensors="pt", padding=True)
        enc.pop("labels", None)
        return dict(enc)
