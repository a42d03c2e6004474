"""Where a bag's episodes begin and end, and which of its samples each one aligns (no rosbags, no ROS here).

The import reads a bag twice (rosbag_import.py). The first pass feeds every usable sample and
every marker / instruction message, in the bag's log order, into :class:`BagCuts`; the second
decodes only the frames the aligned steps use. Joint vectors are small and kept decoded; a
camera frame is kept as its position in the bag (``Ref.seq``), so a bag of any length imports in
bounded memory.

How an episode's grid is placed, as the live recorder places it (docs/collect.md, "How
alignment works"):

* **Markers and instruction messages are the operator's start and save.** When the streams are
  stamped on the clock the bag logged with (ROS time on a robot: the reference stream's stamps
  advance with the log time and lag it by at most ``max_lag_s``), the grid runs from the start
  marker's time to the save marker's, exactly as the recorder runs it from ``clock_now`` at
  start to ``clock_now`` at save. Otherwise (a twin stamping in its own time) the grid starts at
  the first joint state logged after the start and ends at the newest stamp logged by the save:
  the recorder's fallback.
* **One episode per bag, or per stretch between joint-state gaps**: the grid starts at the
  stretch's first joint state; a bag ends at its newest stamp, a stretch at its last joint state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vla_robot.recorder.rosbag_mapping import MARKERS, BagMapping, MappingError


@dataclass(slots=True)
class Ref:
    """A sample found in the first pass: where it is in the bag, when the bag logged it, its value
    when it is small (joint vectors), else None (decoded again in the second pass)."""

    seq: int
    receive: float
    value: Any = None


@dataclass
class Cut:
    """One episode cut out of a bag, in the bag's log time."""

    begin: float
    instruction: str
    operator: bool  # begin / end are the operator's start and save (markers, instruction messages)
    end: float | None = None
    verdict: bool | str | None = None  # True / False: the label it commits with; "discard"; None while open
    failed: str | None = None  # why it cannot be imported (a corrupt stretch of the bag)


class CutError(ValueError):
    """A marker the mapping's vocabulary does not know."""


@dataclass
class BagCuts:
    """First-pass state of one bag: samples per stream and the episode cuts."""

    mapping: BagMapping
    streams: tuple[str, ...]
    name: str = "bag"
    samples: dict[str, list[tuple[float, Ref]]] = field(default_factory=dict)  # stream -> [(stamp, ref)], log order
    cuts: list[Cut] = field(default_factory=list)
    instruction: str = ""
    discarded_starts: list[float] = field(default_factory=list)  # a start while an episode ran: the running one
    _last_state: float | None = None
    _last_log: float | None = None

    def __post_init__(self) -> None:
        self.samples = {s: [] for s in self.streams}
        self.instruction = self.mapping.instruction

    @property
    def open(self) -> Cut | None:
        return self.cuts[-1] if self.cuts and self.cuts[-1].verdict is None and not self.cuts[-1].failed else None

    # -- first pass: log order --------------------------------------------------------------
    def add(self, stream: str, stamp: float, ref: Ref) -> None:
        """A decoded, usable sample of a stream (joint states also drive the bag and gap splits)."""
        split = self.mapping.episodes
        self._last_log = ref.receive
        if stream == "state":
            if split.split == "gap" and self._last_state is not None and ref.receive - self._last_state > split.gap_s:
                self.end(self._last_state, split.success)
            self._last_state = ref.receive
            if split.split in ("bag", "gap") and self.open is None and not (split.split == "bag" and self.cuts):
                self.begin(ref.receive, operator=False)
        self.samples[stream].append((stamp, ref))

    def seen(self, receive: float) -> None:
        """Any message of the bag (the bag's end, for an episode no marker ended)."""
        self._last_log = receive

    def marker(self, word: str, receive: float) -> None:
        self._last_log = receive
        if word not in MARKERS:
            raise CutError(f"{self.name}: marker {word!r} at {receive:.3f} is not one of {list(MARKERS)}")
        verdict = MARKERS[word]
        if verdict is None:  # start
            if self.open is not None:  # the operator started over: the running episode is not kept
                self.discarded_starts.append(self.open.begin)
                self.end(receive, "discard")
            self.begin(receive, operator=True)
        elif self.open is not None:
            self.end(receive, self.mapping.episodes.success if verdict == "default" else verdict)

    def instruction_message(self, text: str, receive: float) -> None:
        self._last_log = receive
        if self.mapping.episodes.split == "instruction":
            if self.open is not None:
                self.end(receive, self.mapping.episodes.success)
            self.instruction = text
            self.begin(receive, operator=True)
        else:
            self.instruction = text  # the next episode's

    def begin(self, receive: float, operator: bool) -> None:
        if not self.instruction:
            raise MappingError("no instruction for the episode: set `instruction:` in the mapping or name "
                               "episodes.instruction_topic")
        self.cuts.append(Cut(receive, self.instruction, operator))

    def end(self, receive: float, verdict: bool | str) -> None:
        cut = self.open
        if cut is not None:
            cut.end, cut.verdict = receive, verdict

    def finish(self) -> None:
        """The bag ended: an episode no marker ended ends with it (gap split: at its last joint state)."""
        split = self.mapping.episodes
        if self.open is not None:
            last = self._last_state if split.split == "gap" else self._last_log
            self.end(last if last is not None else self.open.begin, split.success)

    def fail(self, reason: str) -> Cut | None:
        """The bag cannot be read past here: the running episode is failed (returned); the ended ones stay."""
        cut = self.open
        if cut is not None:
            cut.failed = reason
        return cut

    # -- the episodes' grids ----------------------------------------------------------------
    def on_log_clock(self, max_lag_s: float) -> bool:
        """Whether the reference (joint-state) stream is stamped on the bag's log clock: its stamps
        advance at the log rate (+-5 %) and lag the log time by at most ``max_lag_s`` (the median)."""
        if self.mapping.stamps == "receive":
            return True
        pairs = [(stamp, ref.receive) for stamp, ref in self.samples["state"]]
        if len(pairs) < 2:
            return False
        offsets = sorted(r - s for s, r in pairs)
        median = offsets[len(offsets) // 2]
        span_log = pairs[-1][1] - pairs[0][1]
        rate = (pairs[-1][0] - pairs[0][0]) / span_log if span_log > 0 else 1.0
        return abs(median) <= max_lag_s and (span_log < 1.0 or abs(rate - 1.0) <= 0.05)

    def window(self, cut: Cut, on_clock: bool) -> tuple[float, float | None] | None:
        """(grid start, grid end or None: the newest stamp) of a cut, on the stamp clock; None if
        no joint state falls in it."""
        end_log = cut.end if cut.end is not None else math.inf
        if cut.operator and on_clock:
            return cut.begin, cut.end
        inside = [stamp for stamp, ref in self.samples["state"] if cut.begin <= ref.receive <= end_log]
        if not inside:
            return None
        if not cut.operator:  # a bag ends at its newest stamp, a stretch at its last joint state
            return inside[0], (inside[-1] if self.mapping.episodes.split == "gap" else None)
        newest = [stamp for seq in self.samples.values() for stamp, ref in seq if ref.receive <= end_log]
        return inside[0], max(newest)

    def episode_samples(self, start: float, end: float | None, period: float,
                        max_lag_s: float) -> dict[str, list[tuple[float, Ref]]]:
        """The samples ``align_samples`` would look at for this grid (it skips stamps more than 10
        periods before the start and more than ``max_lag_s`` after the end)."""
        lo = start - 10 * period
        hi = math.inf if end is None else end + max_lag_s
        return {s: [(t, r) for t, r in seq if lo <= t <= hi] for s, seq in self.samples.items()}
