"""Training-time image augmentation: a random crop resized back, then colour jitter (uint8 in, uint8 out).

The recipe follows OpenVLA-OFT (random crop of 90 % of the area, brightness/contrast/saturation
0.2, hue 0.05) and openpi (random crop and colour jitter on every camera). Both report it as
what makes a policy robust to small camera moves and lighting changes on the real robot.
Deployment never jitters; it centre-crops the same area (`VLAConfig.crop_scale`), so objects
keep the scale the policy was trained on.

Every draw comes from a generator seeded by (run seed, stream, sample position), so a sample
is augmented the same way whatever the number of processes or DataLoader workers, and after a
resume. Pure torch: torchvision does not import beside the CPU torch here.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from training.config import AugmentSection
from vla_robot.models.prompting import crop_box

# RGB → YIQ: hue is a rotation of the (I, Q) chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = torch.linalg.inv(_YIQ)


def sample_seed(seed: int, stream: str, position: int) -> int:
    digest = hashlib.sha256(f"{seed}:aug:{stream}:{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def random_crop(image: torch.Tensor, scale: float, g: torch.Generator) -> torch.Tensor:
    """(3, H, W) → a crop of `scale` of the area at a random position, resized back to (H, W)."""
    if scale >= 1.0:
        return image.float()
    h, w = image.shape[-2:]
    ch, cw = crop_box(h, w, scale)
    top = int(torch.randint(0, h - ch + 1, (), generator=g))
    left = int(torch.randint(0, w - cw + 1, (), generator=g))
    crop = image[:, top:top + ch, left:left + cw].float().unsqueeze(0)
    return F.interpolate(crop, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]


def colour_jitter(image: torch.Tensor, aug: AugmentSection, g: torch.Generator) -> torch.Tensor:
    """Float (3, H, W) in [0, 255]: brightness, contrast, saturation, then hue (fixed order)."""
    x = image
    if aug.brightness:
        x = x * _uniform(g, 1 - aug.brightness, 1 + aug.brightness)
    gray = (x * _YIQ[0].view(3, 1, 1)).sum(0, keepdim=True)
    if aug.contrast:
        c = _uniform(g, 1 - aug.contrast, 1 + aug.contrast)
        x = (x - gray.mean()) * c + gray.mean()
        gray = (x * _YIQ[0].view(3, 1, 1)).sum(0, keepdim=True)
    if aug.saturation:
        s = _uniform(g, 1 - aug.saturation, 1 + aug.saturation)
        x = (x - gray) * s + gray
    if aug.hue:
        angle = 2 * math.pi * _uniform(g, -aug.hue, aug.hue)
        cos, sin = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
        x = torch.einsum("ij,jhw->ihw", _RGB @ rot @ _YIQ, x)
    return x


class ImageAugmenter:
    """Applies the augmentation to every camera of a sample, from one per-sample generator."""

    def __init__(self, aug: AugmentSection):
        self.aug = aug

    def __call__(self, images: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        out = {}
        for cam in sorted(images):
            x = colour_jitter(random_crop(images[cam], self.aug.crop_scale, g), self.aug, g)
            out[cam] = x.round().clamp(0, 255).to(torch.uint8)
        return out
