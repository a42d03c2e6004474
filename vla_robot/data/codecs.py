"""A zarr v3 array->bytes codec that stores each image chunk through a real image codec.

Images are stored one frame per chunk (shape ``(1, H, W, C)`` or ``(1, H, W)``) so that a
training sampler can decode exactly the frame it needs. The codec is registered with
zarr under the name ``vla_robot.image`` when :mod:`vla_robot.data` is imported; any
reader of the store must import that package first (plain zarr cannot decode JPEG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

CODEC_NAME = "vla_robot.image"
IMAGE_FORMATS = ("jpeg", "jpegxl", "png")
LOSSY_FORMATS = ("jpeg", "jpegxl")


def encode_image(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode one HxWxC (uint8) or HxW (uint8/uint16) frame."""
    if fmt == "jpeg":
        return imagecodecs.jpeg8_encode(image, level=quality)
    if fmt == "jpegxl":
        return imagecodecs.jpegxl_encode(image, level=quality, effort=1)
    if fmt == "png":
        return imagecodecs.png_encode(image, level=1)
    raise ValueError(f"unknown image format {fmt!r}; allowed: {IMAGE_FORMATS}")


def decode_image(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "jpeg":
        return imagecodecs.jpeg8_decode(data)
    if fmt == "jpegxl":
        return imagecodecs.jpegxl_decode(data)
    if fmt == "png":
        return imagecodecs.png_decode(data)
    raise ValueError(f"unknown image format {fmt!r}; allowed: {IMAGE_FORMATS}")


@dataclass(frozen=True)
class ImageCodec(ArrayBytesCodec):
    """Encode a ``(1, H, W[, C])`` chunk as one JPEG / JPEG-XL / PNG image."""

    is_fixed_size = False

    format: str = "jpeg"
    quality: int = 90

    def __init__(self, *, format: str = "jpeg", quality: int = 90) -> None:
        if format not in IMAGE_FORMATS:
            raise ValueError(f"image codec format {format!r} not allowed; choose one of {IMAGE_FORMATS}")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"image codec quality must be in 1..100, got {quality}")
        object.__setattr__(self, "format", format)
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, CODEC_NAME, require_configuration=True)
        return cls(**config)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": CODEC_NAME, "configuration": {"format": self.format, "quality": self.quality}}

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        array = np.asarray(chunk_array.as_numpy_array())
        if array.shape[0] != 1:
            raise ValueError(f"{CODEC_NAME} needs one frame per chunk, got chunk shape {array.shape}")
        data = encode_image(np.ascontiguousarray(array[0]), self.format, self.quality)
        return chunk_spec.prototype.buffer.from_bytes(data)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        image = decode_image(chunk_bytes.to_bytes(), self.format)
        image = image.reshape(chunk_spec.shape).astype(chunk_spec.dtype.to_native_dtype(), copy=False)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(image)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("image chunks have a variable encoded size")


register_codec(CODEC_NAME, ImageCodec)
