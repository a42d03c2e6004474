"""Map a device clock (camera hardware timestamps) onto the host / ROS clock.

Why not just stamp with the receive time: USB transfer and driver queues add variable
latency, so frames stamped on arrival jitter by milliseconds. The device clock is
smooth but has an unknown offset. The offset is estimated as the minimum of
``host_receive - device`` over a sliding window (the frame that arrived fastest bounds
the latency from below), which follows slow drift and re-locks after a device reset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class DeviceClockMapper:
    window: int = 300
    reset_threshold_s: float = 1.0  # a jump larger than this means the device clock restarted
    resets: int = 0
    _offsets: deque = field(default_factory=deque, init=False, repr=False)
    _last_device: float | None = field(default=None, init=False, repr=False)

    def to_host(self, device_stamp: float, receive_stamp: float) -> float:
        """Host-clock time at which the device captured the frame (never after its arrival)."""
        if self._last_device is not None:
            step = device_stamp - self._last_device
            if step < 0 or step > self.reset_threshold_s + 1.0:
                self._offsets.clear()
                self.resets += 1
        self._last_device = device_stamp
        self._offsets.append(receive_stamp - device_stamp)
        if len(self._offsets) > self.window:
            self._offsets.popleft()
        return device_stamp + min(self._offsets)

    @property
    def offset(self) -> float | None:
        return min(self._offsets) if self._offsets else None
