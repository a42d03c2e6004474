"""The camera interface: connect / read / close, plus intrinsics for CameraInfo and the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    ``color`` is uint8 HxWx3 RGB; ``depth`` is optional uint16 HxW (millimetres), aligned
    to colour. ``stamp`` is the device clock (seconds); ``receive_stamp`` the host clock when
    the frame arrived, so latency and clock mapping can be audited later.
    """

    color: np.ndarray
    stamp: float
    receive_stamp: float
    depth: np.ndarray | None = None
    index: int = 0


@runtime_checkable
class Camera(Protocol):
    name: str
    intrinsics: CameraIntrinsics

    def connect(self) -> None: ...

    def read(self, timeout: float = 1.0) -> Frame:
        """Block until the next frame; raise ``TimeoutError`` when none arrives in time."""
        ...

    def close(self) -> None: ...
