"""Align free-running streams (joint states, commanded actions, camera frames) to the control grid.

The rule (docs/collect.md, "How alignment works"):

* The grid is ``t0 + k / control_rate_hz`` on the stamp clock (message header stamps: ROS time
  on a robot, twin time in simulation). ``t0`` is the operator's start and the grid ends at the
  save, both read on the stamp clock (ROS time) when the streams are stamped on it, so the saved
  duration is start -> save whatever the delivery lag; otherwise (a lock-stepped twin) the grid
  starts at the first reference (joint-state) sample after the start and ends at the newest stamp
  at the save.
* Every step takes, from every stream, **the sample nearest to the grid time**: of the last
  sample at or before it and the first one after it, the closer. Values are never interpolated
  or invented; each stream's signed skew (sample stamp minus grid time) is kept per step.
* A sample counts only if ``|skew| <= max_skew`` (per stream; default: one control period or
  1.5 of the stream's own median sample interval, whichever is larger, so one lost frame never
  makes a hole). Where a stream pauses around the grid time (its neighbouring samples more than
  two limits apart), starts after it or has stopped, the limit is half a control period or half
  its interval: a teleop that starts late never lends its first command to the step before.
* A step without a usable sample of every stream is not stored: before the first complete step
  it is *warm-up*, between complete steps it belongs to a *hole*, after the last one (at stop) it
  is *trimmed*. All three are counted, and holes are listed with the streams that caused them.
* The first complete steps are held back for ``settle_s`` (0.5 s of grid time): if a stream breaks
  off within them (a twin's previous episode still in flight when start was pressed, then the
  reset's gap), they count as warm-up and the episode starts after the break.

Why nearest and not the previous rule (nearest within 40 % of a control period): a camera at
29.97 fps slides 1 ms per second against a 30 Hz grid, so its nearest frame drifts anywhere
within half a camera period of the grid time (16.7 ms) and spent a fifth of the time outside a
13.3 ms window: a 40 s recording lost a contiguous 6.7 s block (200 steps) and a 20 s one was
trimmed to 13.3 s (tests/test_recorder_alignment.py replays exactly that). With the nearest
sample, a live stream is always within half its own period of the grid time. LeRobot's record
loop takes the latest frame instead, whose age reaches a whole camera period; diffusion_policy's
real env interpolates the robot state to the camera stamp, which smears fast events (a gripper
closing) and stores values nobody measured. We store measured samples and their skew, so a user
who wants interpolation can still do it from the stored stamps.

Deciding a step needs, per stream, a sample at or after its grid time (then the nearest is
known). A stream that sends nothing is waited for until ``max_wait_s`` host seconds after the
stamp clock (any other stream) has shown the step's whole skew window has passed and the stream
itself has been silent that long; a stream that keeps delivering but lags more than
``max_lag_s`` behind the others is not waited for any longer. So a dead camera never stalls the
episode and never builds a backlog.

Offline use (bag import, tests): :func:`align_samples` runs the same code on lists of stamped
samples, with receive time = stamp. Nothing here imports ROS.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence


@dataclass(frozen=True)
class AlignerConfig:
    """``streams`` lists every stream, the reference included.

    ``max_skew_s``: one number for every stream, a ``{stream: seconds}`` mapping for some, or
    None (default per stream: ``max(1 / control_rate_hz, 1.5 * its median sample interval)``).
    """

    control_rate_hz: float
    streams: tuple[str, ...]
    reference: str = "state"
    max_skew_s: float | Mapping[str, float] | None = None
    max_wait_s: float = 1.0  # host seconds a step waits for a silent stream
    max_lag_s: float | None = None  # host seconds a delivering-but-late stream is waited for (max(3, 3 max_wait_s))
    buffer: int = 1024  # samples kept per stream while steps are undecided (a lagging stream makes others wait)
    idle_keep: int = 6  # samples kept per stream before the episode is armed (the first step needs them)
    settle_s: float = 0.5  # grid seconds the first complete steps are held back: a hole in them restarts the episode

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", tuple(self.streams))
        if self.max_lag_s is None:
            object.__setattr__(self, "max_lag_s", max(3.0, 3.0 * self.max_wait_s))
        if self.control_rate_hz <= 0:
            raise ValueError(f"aligner: control_rate_hz must be > 0, got {self.control_rate_hz}")
        if self.reference not in self.streams:
            raise ValueError(f"aligner: reference stream {self.reference!r} is not among streams {self.streams}")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"aligner: duplicate stream names in {self.streams}")
        skews = self.max_skew_s.values() if isinstance(self.max_skew_s, Mapping) else [self.max_skew_s]
        for value in skews:
            if value is not None and not value > 0:
                raise ValueError(f"aligner: max_skew_s must be > 0 seconds, got {value}")
        if isinstance(self.max_skew_s, Mapping):
            unknown = sorted(set(self.max_skew_s) - set(self.streams))
            if unknown:
                raise ValueError(f"aligner: max_skew_s names unknown streams {unknown}; streams are {self.streams}")
        if self.max_wait_s < 0 or self.max_lag_s < self.max_wait_s:
            raise ValueError(f"aligner: need 0 <= max_wait_s <= max_lag_s, got {self.max_wait_s}, {self.max_lag_s}")

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate_hz

    def fixed_skew(self, stream: str) -> float | None:
        if isinstance(self.max_skew_s, Mapping):
            return self.max_skew_s.get(stream)
        return self.max_skew_s


@dataclass
class Sample:
    stamp: float  # source clock (header stamp), seconds
    receive: float  # host monotonic seconds at arrival
    value: Any


@dataclass
class AlignedStep:
    """One complete step: ``index`` counts grid steps from the episode's first complete step, so
    consecutive stored steps differ by 1 and a hole shows as a jump."""

    index: int
    grid_time: float
    samples: dict[str, Sample]
    skew: dict[str, float]  # sample stamp - grid time, per stream


@dataclass(frozen=True)
class Hole:
    """``length`` grid steps from ``start`` (same numbering as ``AlignedStep.index``) were not
    stored because ``streams`` had no sample within their skew limit."""

    start: int
    length: int
    streams: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"start": self.start, "length": self.length, "streams": list(self.streams)}


@dataclass
class AlignerStats:
    steps: int = 0  # complete steps returned
    warmup_steps: int = 0  # incomplete steps before the first complete one
    warmup_streams: tuple[str, ...] = ()  # streams the warm-up waited for
    hole_steps: int = 0  # incomplete steps between complete ones
    holes: list[Hole] = field(default_factory=list)
    trimmed_steps: int = 0  # incomplete steps after the last complete one, at stop
    trimmed_streams: tuple[str, ...] = ()
    gaps: dict[str, int] = field(default_factory=dict)  # hole + trimmed steps each stream caused
    out_of_order: dict[str, int] = field(default_factory=dict)  # samples older than their stream's newest
    overflows: dict[str, int] = field(default_factory=dict)  # samples dropped because a buffer was full
    late: dict[str, int] = field(default_factory=dict)  # samples that arrived after their step was decided

    @property
    def dropped_steps(self) -> int:
        return self.hole_steps


class _Stream:
    """One stream's buffered samples (ascending stamps) and its recent sample intervals."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.stamps: list[float] = []
        self.intervals: deque[float] = deque(maxlen=32)
        self.newest: float | None = None  # newest stamp ever accepted
        self.last_receive: float | None = None
        self.clock: deque[tuple[float, float]] = deque(maxlen=24)  # (stamp, receive) every 0.25 s: stamp-clock rate

    def add(self, sample: Sample) -> None:
        if self.newest is not None:
            self.intervals.append(sample.stamp - self.newest)
        if not self.clock or sample.receive - self.clock[-1][1] >= 0.25:
            self.clock.append((sample.stamp, sample.receive))
        self.samples.append(sample)
        self.stamps.append(sample.stamp)
        self.newest = sample.stamp
        self.last_receive = sample.receive

    def drop_before(self, i: int) -> None:
        if i > 0:
            del self.samples[:i]
            del self.stamps[:i]

    def clear(self) -> None:
        self.samples.clear()
        self.stamps.clear()
        self.intervals.clear()
        self.clock.clear()
        self.newest = None

    def median_interval(self) -> float | None:
        if len(self.intervals) < 2:
            return None
        ordered = sorted(self.intervals)
        return ordered[len(ordered) // 2]


class StreamAligner:
    """Streaming aligner: ``add`` samples as they arrive, ``arm`` at start, ``poll`` for steps,
    ``stop`` + ``poll`` + ``finish`` at the end. Not thread-safe (the recorder holds a lock)."""

    def __init__(self, config: AlignerConfig):
        self.config = config
        self._streams = {s: _Stream() for s in config.streams}
        self.stats = self._new_stats()
        self.armed = False
        self._t0: float | None = None
        self._k = 0  # next grid index to decide
        self._first: int | None = None  # grid index of the first complete step
        self._held: list[AlignedStep] = []  # first complete steps, until settle_s of them passed without a hole
        self._last_complete: int | None = None
        self._pending: list[tuple[str, ...]] = []  # missing streams of undecided-hole steps since the last complete one
        self._end: float | None = None  # stamp of the last grid time that belongs to the episode (after stop)
        self._stop_receive: float | None = None

    def _new_stats(self) -> AlignerStats:
        names = self.config.streams
        return AlignerStats(gaps=dict.fromkeys(names, 0), out_of_order=dict.fromkeys(names, 0),
                            overflows=dict.fromkeys(names, 0), late=dict.fromkeys(names, 0))

    # -- episode control -----------------------------------------------------------------
    def arm(self, t0: float | None = None, clock_now: float | None = None, now: float | None = None) -> None:
        """Start a new episode grid at ``t0``; else at ``clock_now`` (the stamp clock's time of the
        operator's start, e.g. ROS time) if the streams are stamped on that clock; else at the first
        reference sample to arrive from now on. Samples other streams sent just before stay, so the
        first step has its camera frames."""
        self.stats = self._new_stats()
        self.armed = True
        self._t0 = t0 if t0 is not None else clock_now if self.on_clock(clock_now, now) else None
        self._k = 0
        self._first = self._last_complete = None
        self._held: list[AlignedStep] = []
        self._pending = []
        self._end = self._stop_receive = None

    def disarm(self) -> None:
        self.armed = False
        self._t0 = None
        for stream in self._streams.values():
            keep = max(0, len(stream.samples) - self.config.idle_keep)
            stream.drop_before(keep)

    def on_clock(self, clock_now: float | None, now: float | None = None) -> bool:
        """Whether the reference stream is stamped on the clock that reads ``clock_now`` (host time
        ``now``): over its last seconds its stamps advanced at the host clock's rate (+-5 %: a stalled driver
        delivers a sample late, not on another clock) and its
        newest stamp is at most ``max_lag_s`` behind ``clock_now``. A twin that runs faster or
        lock-steps stamps in its own time, and then the grid follows its samples instead."""
        if clock_now is None:
            return False
        now = time.monotonic() if now is None else now
        probe = list(self._streams[self.config.reference].clock)
        if len(probe) < 4 or probe[-1][1] - probe[0][1] < 1.0 or now - probe[-1][1] > self.config.max_lag_s:
            return False
        # the least-delayed sample of each half of the window: a burst delivered late says nothing about the clock
        half = len(probe) // 2
        s0, r0 = min(probe[:half], key=lambda p: p[1] - p[0])
        s1, r1 = min(probe[half:], key=lambda p: p[1] - p[0])
        if r1 - r0 < 0.5:
            return False
        rate = (s1 - s0) / (r1 - r0)
        behind = clock_now - (s1 + (now - r1))  # the newest stamp, brought forward to now, vs the clock
        return abs(rate - 1.0) <= 0.05 and abs(behind) <= self.config.max_lag_s

    def stop(self, end: float | None = None, now: float | None = None, clock_now: float | None = None) -> float | None:
        """The episode ends at stamp ``end``; else at ``clock_now`` if the streams are stamped on that
        clock; else at the newest stamp of the streams still delivering. Steps up to the end are still
        decided (``poll``: samples in transit arrive), later ones never. Returns the end."""
        now = time.monotonic() if now is None else now
        if end is None and self.on_clock(clock_now, now):
            end = clock_now
        if end is None:
            live = [s.newest for s in self._streams.values()
                    if s.newest is not None and s.last_receive is not None
                    and now - s.last_receive <= self.config.max_wait_s]
            seen = [s.newest for s in self._streams.values() if s.newest is not None]
            end = max(live) if live else max(seen) if seen else None
        self._end = end if end is not None else -math.inf
        self._stop_receive = now
        return end

    def lagging(self, now: float) -> bool:
        """After ``stop``: a stream that still delivers (within ``max_wait_s``) has not reached the end."""
        if self._end is None:
            return False
        return any(st.last_receive is not None and now - st.last_receive < self.config.max_wait_s
                   and (st.newest is None or st.newest < self._end) for st in self._streams.values())

    @property
    def grid_start(self) -> float | None:
        """Grid time of step index 0 (the first complete step), once there is one."""
        if self._t0 is None or self._first is None:
            return None
        return self._t0 + self._first * self.config.period

    @property
    def done(self) -> bool:
        """After ``stop``: every grid step up to the end has been decided."""
        return self._end is not None and (self._t0 is None or self._t0 + self._k * self.config.period > self._end + 1e-9)

    # -- data intake ---------------------------------------------------------------------------
    def add(self, stream: str, stamp: float, value: Any, receive: float | None = None) -> bool:
        """Buffer one sample; False if it was dropped (older than the stream's newest)."""
        st = self._streams[stream]
        if st.newest is not None and stamp <= st.newest:
            if self.armed:
                self.stats.out_of_order[stream] += 1  # duplicates and reordering are dropped, not merged
                return False
            st.clear()  # idle: a clock that jumped back (a restarted driver) starts the stream afresh
        st.add(Sample(float(stamp), time.monotonic() if receive is None else float(receive), value))
        if not self.armed:
            st.drop_before(len(st.samples) - self.config.idle_keep)
        else:
            if stream == self.config.reference and self._t0 is None:
                self._t0 = float(stamp)
            elif self._t0 is not None and self._k and stamp < self._t0 + (self._k - 1.5) * self.config.period:
                self.stats.late[stream] += 1  # nearest to a step already decided: max_wait_s was too short
            if len(st.samples) > self.config.buffer:
                st.drop_before(len(st.samples) - self.config.buffer)
                self.stats.overflows[stream] += 1
        return True

    # -- decisions ------------------------------------------------------------------------
    def skew_limit(self, stream: str) -> float:
        fixed = self.config.fixed_skew(stream)
        if fixed is not None:
            return fixed
        interval = self._streams[stream].median_interval()
        return max(self.config.period, 1.5 * interval) if interval else self.config.period

    def rate_hz(self, stream: str) -> float:
        """The stream's rate from its stamps (median of its last 32 intervals; 0 before it has any)."""
        interval = self._streams[stream].median_interval()
        return 1.0 / interval if interval else 0.0

    def edge_limit(self, stream: str) -> float:
        """Skew limit where a stream has samples on one side of the grid time only (it starts or
        stops there): half a control period or half its interval, so a stream that starts late
        never lends its first sample to the step before, nor a stopped one its last to the next."""
        interval = self._streams[stream].median_interval() or 0.0
        return min(self.skew_limit(stream), max(0.5 * self.config.period, 0.5 * interval))

    def _evidence(self, t: float) -> float | None:
        """Host time at which the stamp clock was first seen at or past ``t`` (any stream)."""
        first = None
        for st in self._streams.values():
            i = bisect.bisect_left(st.stamps, t)
            if i < len(st.samples):
                r = st.samples[i].receive
                first = r if first is None or r < first else first
        if self._end is not None and t > self._end and self._stop_receive is not None:
            first = self._stop_receive if first is None else min(first, self._stop_receive)
        return first

    def _decide(self, t: float, now: float, final: bool) -> dict[str, tuple[Sample | None, float]] | None:
        cfg = self.config
        out: dict[str, tuple[Sample | None, float]] = {}
        waiting: list[str] = []
        for name, st in self._streams.items():
            limit = self.skew_limit(name)
            edge = self.edge_limit(name)
            i = bisect.bisect_left(st.stamps, t)
            before = st.samples[i - 1] if i > 0 else None
            after = st.samples[i] if i < len(st.samples) else None
            if after is None:  # nothing after t (yet): still in transit, or the stream stopped
                out[name] = (before if before is not None and t - before.stamp <= edge else None, limit)
                waiting.append(name)
            elif before is not None and after.stamp - before.stamp <= 2 * limit:  # alive across t
                best = before if t - before.stamp <= after.stamp - t else after
                out[name] = (best if abs(best.stamp - t) <= limit else None, limit)
            else:  # t lies in a pause of the stream (or before its start): only its edges may serve
                near = [s for s in (before, after) if s is not None and abs(s.stamp - t) <= edge]
                out[name] = (min(near, key=lambda s: abs(s.stamp - t)) if near else None, limit)
        if waiting and not final:
            horizon = t + max(out[s][1] for s in waiting)
            seen_at = self._evidence(horizon)
            if seen_at is None:
                return None  # nothing shows the stamp clock has passed this step's window yet
            for name in waiting:
                last = self._streams[name].last_receive
                silent = last is None or now - last >= cfg.max_wait_s
                if not ((silent and now - seen_at >= cfg.max_wait_s) or now - seen_at >= cfg.max_lag_s):
                    return None
        return out

    def poll(self, now: float | None = None) -> list[AlignedStep]:
        """Every grid step that can be decided now, in order. Incomplete steps are counted, not returned."""
        return self._run(time.monotonic() if now is None else now, final=False)

    def finish(self) -> list[AlignedStep]:
        """After ``stop``: decide the remaining steps up to the end without waiting; trailing
        incomplete steps are trimmed (counted with the streams that caused them)."""
        if self._end is None:
            self.stop()
        out = self._run(math.inf, final=True)
        out += self._held  # an episode shorter than settle_s keeps what it has
        self._held = []
        if self._pending:
            self.stats.trimmed_steps += len(self._pending)
            self.stats.trimmed_streams = _union(self._pending)
            for missing in self._pending:
                for s in missing:
                    self.stats.gaps[s] += 1
            self._pending = []
        return out

    def _run(self, now: float, final: bool) -> list[AlignedStep]:
        out: list[AlignedStep] = []
        if not self.armed or self._t0 is None:
            return out
        period = self.config.period
        while True:
            t = self._t0 + self._k * period
            if self._end is not None and t > self._end + 1e-9:
                break
            decision = self._decide(t, now, final)
            if decision is None:
                break
            missing = tuple(s for s, (smp, _) in decision.items() if smp is None)
            if missing and self._held:  # the streams broke off right after they began (a reset in flight)
                self.stats.warmup_steps += self._k - self._first
                self.stats.steps -= len(self._held)
                self._first, self._held = None, []
            if missing:
                if self._first is None:
                    self.stats.warmup_steps += 1
                    self.stats.warmup_streams = tuple(sorted(set(self.stats.warmup_streams) | set(missing)))
                else:
                    self._pending.append(missing)
            else:
                if self._first is None:
                    self._first = self._k
                if self._pending:
                    hole = Hole(self._k - len(self._pending) - self._first, len(self._pending), _union(self._pending))
                    self.stats.holes.append(hole)
                    self.stats.hole_steps += hole.length
                    for miss in self._pending:
                        for s in miss:
                            self.stats.gaps[s] += 1
                    self._pending = []
                samples = {s: smp for s, (smp, _) in decision.items()}
                skew = {s: smp.stamp - t for s, smp in samples.items()}
                self.stats.steps += 1
                self._last_complete = self._k
                step = AlignedStep(self._k - self._first, t, samples, skew)
                if self._held or step.index == 0:
                    self._held.append(step)
                    if t - self._held[0].grid_time >= self.config.settle_s or final:
                        out += self._held
                        self._held = []
                else:
                    out.append(step)
            self._k += 1
            self._prune(self._t0 + self._k * period)
        return out

    def _prune(self, next_t: float) -> None:
        """Keep, per stream, the last sample before the next grid time and everything after it."""
        for st in self._streams.values():
            st.drop_before(bisect.bisect_left(st.stamps, next_t) - 1)


def _union(missing: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(sorted({s for m in missing for s in m}))


@dataclass
class Alignment:
    """What :func:`align_samples` returns: the complete steps and the counts that explain the rest."""

    steps: list[AlignedStep]
    stats: AlignerStats
    grid_start: float | None
    max_skew_s: dict[str, float] = field(default_factory=dict)  # the limit each stream had at the end


def align_samples(samples: Mapping[str, Sequence[tuple[float, Any]]], config: AlignerConfig,
                  start: float | None = None, end: float | None = None) -> Alignment:
    """Align recorded streams offline (a rosbag, a log): ``samples[stream]`` is a sequence of
    ``(stamp, value)``; values are passed through untouched (give indices for large data).

    The grid starts at ``start`` (default: the first reference stamp) and ends at ``end``
    (default: the newest stamp of any stream). Receive time is taken equal to the stamp, so the
    live recorder's waiting rules apply in stamp time and the result is deterministic.
    """
    unknown = sorted(set(samples) - set(config.streams))
    if unknown:
        raise ValueError(f"align_samples: unknown streams {unknown}; the config has {config.streams}")
    events = sorted(((float(stamp), name, value) for name, seq in samples.items() for stamp, value in seq),
                    key=lambda e: e[0])
    aligner = StreamAligner(config)
    aligner.arm(start)
    if end is not None:
        aligner.stop(end, now=end)  # in stamp time: the episode ends at ``end``
    steps: list[AlignedStep] = []
    for stamp, name, value in events:
        if start is not None and stamp < start - 10 * config.period:
            continue
        if end is not None and stamp > end + config.max_lag_s:
            break
        aligner.add(name, stamp, value, receive=stamp)
        steps += aligner.poll(now=stamp)
    if end is None:
        last = events[-1][0] if events else 0.0
        aligner.stop(last, now=last)
    steps += aligner.finish()
    limits = {s: aligner.skew_limit(s) for s in config.streams}
    return Alignment(steps, aligner.stats, aligner.grid_start, limits)
