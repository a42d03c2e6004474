"""Is every input stream alive? Arrival times per stream, judged against ``stale_after_s``.

A camera unplugged mid-episode must turn the recorder to ERROR within a second (issue #13), so
staleness is judged on host receive time (what the recorder can see), independently of the
stamps the aligner works with, and checked by the node's 20 Hz tick.
"""

from __future__ import annotations

from collections import deque


class StreamHealth:
    """Receive times of every stream; ``silent(now)`` names the streams that stopped."""

    def __init__(self, streams: tuple[str, ...], stale_after_s: float = 0.5):
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0 seconds, got {stale_after_s}")
        self.streams = tuple(streams)
        self.stale_after_s = stale_after_s
        self.last: dict[str, float | None] = dict.fromkeys(self.streams)
        self.since: float | None = None  # when the current episode started: a stream never seen since is silent too
        self.rejected: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.stale_events: dict[str, int] = dict.fromkeys(self.streams, 0)
        self._recent: dict[str, deque[float]] = {s: deque(maxlen=64) for s in self.streams}
        self._stale: set[str] = set()

    def seen(self, stream: str, receive: float) -> None:
        self.last[stream] = receive
        self._recent[stream].append(receive)

    def reject(self, stream: str) -> None:
        self.rejected[stream] = self.rejected.get(stream, 0) + 1

    def watch_from(self, now: float | None) -> None:
        """From ``now`` on, a stream that has sent nothing for ``stale_after_s`` is silent even if
        it was never seen (None: only streams seen before can be silent)."""
        self.since = now

    def silent(self, now: float) -> dict[str, float]:
        """Stream -> seconds without a message, for every stream silent longer than ``stale_after_s``."""
        out = {}
        for stream in self.streams:
            last = self.last[stream] if self.last[stream] is not None else self.since
            if last is not None and now - last > self.stale_after_s:
                out[stream] = now - last
        newly = set(out) - self._stale
        for stream in newly:
            self.stale_events[stream] += 1
        self._stale = set(out)
        return out

    def rate_hz(self, stream: str) -> float:
        """Arrival rate over the last 64 messages (0 with fewer than two)."""
        recent = self._recent[stream]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def age(self, stream: str, now: float) -> float | None:
        last = self.last[stream]
        return None if last is None else now - last
