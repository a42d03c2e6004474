"""``TwinCamera``: a twin camera behind the same ``Camera`` interface as the RealSense/USB drivers."""

from __future__ import annotations

import time

from vla_robot.cameras.interface import CameraIntrinsics, Frame

from sim.twin import Twin


class TwinCamera:
    """Each ``read()`` renders the twin's current state: ``stamp`` is simulation time,
    ``receive_stamp`` the host clock, ``index`` counts frames since ``connect()``."""

    def __init__(self, twin: Twin, name: str = "third_person"):
        if name not in twin.camera_names:
            raise ValueError(f"unknown camera {name!r}; this twin has {twin.camera_names}")
        self.twin = twin
        self.name = name
        self.intrinsics: CameraIntrinsics = twin.intrinsics(name)
        self._index = 0
        self.connected = False

    def connect(self) -> None:
        self.connected = True
        self._index = 0

    def read(self, timeout: float = 1.0) -> Frame:
        if not self.connected:
            raise RuntimeError(f"camera {self.name!r}: call connect() before read()")
        color = self.twin.render(self.name)
        frame = Frame(color=color, stamp=self.twin.sim_time, receive_stamp=time.time(), index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        self.connected = False
