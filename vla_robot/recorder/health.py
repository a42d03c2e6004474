"""Is every input stream alive? Arrival times per stream, judged against ``stale_after_s``.

A camera unplugged mid-episode must turn the recorder to ERROR within a second (issue #13), so
staleness is judged on host receive time (what the recorder can see), independently of the
stamps the aligner works with, and checked by the node's 20 Hz tick.
"""

from __future__ import annotations


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
        self.transport_lost: dict[str, int] = dict.fromkeys(self.streams, 0)  # DDS message-lost events
        self.stale_events: dict[str, int] = dict.fromkeys(self.streams, 0)
        self._stale: dict[str, float] = {}
        self._hold_until = 0.0

    def seen(self, stream: str, receive: float) -> None:
        self.last[stream] = receive

    def reject(self, stream: str) -> None:
        self.rejected[stream] = self.rejected.get(stream, 0) + 1

    def lost_in_transport(self, stream: str, count: int) -> None:
        self.transport_lost[stream] = self.transport_lost.get(stream, 0) + int(count)

    def watch_from(self, now: float | None) -> None:
        """From ``now`` on, a stream that has sent nothing for ``stale_after_s`` is silent even if
        it was never seen (None: only streams seen before can be silent)."""
        self.since = now

    def hold(self, until: float) -> None:
        """Keep the last verdict until ``until``: the watcher itself stalled (a blocked process sees
        every stream silent until it has taken in the messages that queued up meanwhile)."""
        self._hold_until = max(self._hold_until, until)

    def silent(self, now: float) -> dict[str, float]:
        """Stream -> seconds without a message, for every stream silent longer than ``stale_after_s``."""
        if now < self._hold_until:
            return dict(self._stale)
        out = {}
        for stream in self.streams:
            last = self.last[stream] if self.last[stream] is not None else self.since
            if last is not None and now - last > self.stale_after_s:
                out[stream] = now - last
        for stream in set(out) - set(self._stale):
            self.stale_events[stream] += 1
        self._stale = dict(out)
        return out

    def age(self, stream: str, now: float) -> float | None:
        last = self.last[stream]
        return None if last is None else now - last
