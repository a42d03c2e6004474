"""The aligner alone, on free-running streams: every step present while every stream is alive,
each camera within half its period of the grid, holes only where a stream really stopped.

Streams are simulated as a robot produces them: cameras on their own crystal (29.97 / 30.00 /
30.03 fps, any phase, up to +-0.2 % drift against the control grid), joint states at 30-200 Hz, a
30 Hz teleop, each with its own delivery latency and jitter, fed in arrival order through the
streaming API the recorder uses (``add`` then ``poll(now=receive)``).
"""

import random

import numpy as np
import pytest

from vla_robot.recorder.aligner import AlignerConfig, StreamAligner, align_samples

RATE = 30.0


def camera_stamps(fps, phase, drift_ppm, duration, start=0.0):
    period = 1.0 / (fps * (1.0 + drift_ppm * 1e-6))
    return np.arange(start + phase * period, duration, period)


PRE = 1.0  # streams run this long before the episode is armed at t = 0, as on a robot


def make_streams(cams, state_hz, duration, action_hz=30.0, outage=None):
    """{stream: stamps}; ``outage`` = (stream, t_from, t_to) removes that stream's samples in between."""
    streams = {"state": np.arange(-PRE, duration, 1.0 / state_hz),
               "action": np.arange(-PRE + 0.0021, duration, 1.0 / action_hz)}
    for name, (fps, phase, drift) in cams.items():
        streams[name] = camera_stamps(fps, phase, drift, duration, start=-PRE)
    if outage:
        name, lo, hi = outage
        streams[name] = streams[name][(streams[name] < lo) | (streams[name] >= hi)]
    return streams


def arrivals(streams, seed, latency=None):
    """(receive, stream, stamp) in arrival order: per-stream latency plus jitter, in-order per stream."""
    rng = random.Random(seed)
    latency = latency or {}
    events = []
    for name, stamps in streams.items():
        base = latency.get(name, 0.030 if name.startswith("images/") else 0.002)
        last = -np.inf
        for t in stamps:
            last = max(last, t + base + rng.uniform(0.0, 0.008))
            events.append((last, name, float(t)))
    return sorted(events)


def run_live(streams, config, seed=0, latency=None, stop_at=None):
    """Feed the aligner in arrival order; arm when the first reference sample is there; stop at ``stop_at``."""
    al = StreamAligner(config)
    steps = []
    events = arrivals(streams, seed, latency)
    if stop_at is None:  # the operator saves while the streams still run
        stop_at = max(v[-1] for v in streams.values()) - 0.5
    for receive, name, stamp in events:
        if stop_at is not None and receive > stop_at:
            break
        if not al.armed and receive >= 0.0:
            al.arm()  # the operator presses start while the streams run
        al.add(name, stamp, stamp, receive)
        steps += al.poll(now=receive)
    al.stop(now=stop_at)
    for receive, name, stamp in events:  # frames still in transit at the stop arrive during save's wait
        if stop_at < receive <= stop_at + config.max_wait_s:
            al.add(name, stamp, stamp, receive)
            steps += al.poll(now=receive)
    steps += al.finish()
    return steps, al


def config_for(streams, **kw):
    return AlignerConfig(RATE, tuple(streams), **kw)


def check_complete(steps, al, cams, state_hz):
    index = np.array([s.index for s in steps])
    np.testing.assert_array_equal(index, np.arange(len(steps)))  # every grid step present, in order
    assert al.stats.hole_steps == 0 and al.stats.holes == []
    assert al.stats.warmup_steps <= 1 and al.stats.trimmed_steps <= 1
    grid = np.array([s.grid_time for s in steps])
    np.testing.assert_allclose(np.diff(grid), 1.0 / RATE, atol=1e-9)
    for name, (fps, _, drift) in cams.items():
        half = 0.5 / (fps * (1 + drift * 1e-6))
        worst = max(abs(s.skew[name]) for s in steps)
        assert worst <= half + 1e-9, f"{name}: |skew| {worst * 1000:.2f} ms > half a period {half * 1000:.2f} ms"
    assert max(abs(s.skew["state"]) for s in steps) <= 0.5 / state_hz + 1e-9
    for s in steps:  # a sample is a real one, with its own stamp
        for name, smp in s.samples.items():
            assert smp.value == smp.stamp and s.skew[name] == pytest.approx(smp.stamp - s.grid_time)


@pytest.mark.parametrize("fps", [29.97, 30.00, 30.03])
@pytest.mark.parametrize("seconds", [20, 40])
def test_the_issue_recordings_keep_every_step(fps, seconds):
    """Issue #13: at 29.97 fps the old rule (nearest within 40 % of a control period) saved a 20 s
    episode as 400 of 600 steps and lost a 200-step block of a 40 s one."""
    cams = {"images/front": (fps, 0.0, 0.0), "images/wrist": (fps, 0.0, 0.0)}
    streams = make_streams(cams, 100.0, seconds)
    steps, al = run_live(streams, config_for(streams))
    check_complete(steps, al, cams, 100.0)
    assert len(steps) >= (seconds - 0.5) * RATE - 2  # start -> save, +-1 step at either end


def test_property_any_rate_phase_drift_and_joint_rate():
    """24 random setups: two cameras each at 29.97/30.00/30.03 fps, any phase, drift in +-0.2 %,
    joint states at 30/50/100/200 Hz; long enough for every camera to slide through every phase."""
    rng = random.Random(1234)
    for case in range(24):
        cams = {f"images/c{k}": (rng.choice([29.97, 30.0, 30.03]), rng.random(), rng.uniform(-2000, 2000))
                for k in range(2)}
        state_hz = [30.0, 50.0, 100.0, 200.0][case % 4]
        streams = make_streams(cams, state_hz, 18.0)
        steps, al = run_live(streams, config_for(streams), seed=case)
        try:
            check_complete(steps, al, cams, state_hz)
        except AssertionError as exc:
            raise AssertionError(f"case {case}: cams {cams}, joints {state_hz} Hz: {exc}") from None
        assert len(steps) >= 17.5 * RATE - 2


def test_jittered_camera_stamps_stay_within_half_their_interval():
    """A USB camera stamped by the host: +-2 ms stamp jitter; nearest stays within half the local interval."""
    rng = np.random.default_rng(0)
    streams = make_streams({}, 100.0, 15.0)
    cam = camera_stamps(29.97, 0.3, 0.0, 15.0, start=-PRE)
    streams["images/usb"] = cam = np.sort(cam + rng.uniform(-0.002, 0.002, size=len(cam)))
    steps, al = run_live(streams, config_for(streams))
    assert al.stats.hole_steps == 0 and [s.index for s in steps] == list(range(len(steps)))
    for s in steps:
        i = np.searchsorted(cam, s.grid_time)
        assert abs(s.skew["images/usb"]) <= 0.5 * (cam[i] - cam[i - 1]) + 1e-9  # half the interval around it
    assert max(abs(s.skew["images/usb"]) for s in steps) <= 0.5 / 29.97 + 0.002


def test_a_lost_frame_is_not_a_hole_but_a_stopped_camera_is():
    cams = {"images/front": (29.97, 0.5, 0.0)}
    streams = make_streams(cams, 50.0, 20.0)
    cam = streams["images/front"]
    streams["images/front"] = np.delete(cam, [100, 300, 301])  # one lost frame, then two in a row
    steps, al = run_live(streams, config_for(streams))
    assert al.stats.hole_steps == 0 and al.stats.warmup_steps == 0

    streams = make_streams(cams, 50.0, 20.0, outage=("images/front", 8.0, 11.0))  # unplugged for 3 s
    steps, al = run_live(streams, config_for(streams))
    assert len(al.stats.holes) == 1
    hole = al.stats.holes[0]
    assert hole.streams == ("images/front",)
    limit = al.skew_limit("images/front")
    lost_grid = [k for k in range(int(20 * RATE)) if not any(abs(t - k / RATE) <= limit for t in streams["images/front"])]
    # the steps without a frame close enough, plus at most one at each edge: steps decided while the
    # camera was silent only take its last frame within the one-sided (edge) limit
    without = len([k for k in lost_grid if 0 < k < 19 * RATE])
    assert without <= hole.length <= without + 2
    assert 3.0 * RATE - 6 <= hole.length <= 3.0 * RATE
    stored = {s.index for s in steps}
    assert not stored & set(range(hole.start, hole.start + hole.length))  # nothing invented inside the hole
    assert stored | set(range(hole.start, hole.start + hole.length)) == set(range(len(stored) + hole.length))
    assert al.stats.gaps["images/front"] == hole.length and al.stats.gaps["state"] == 0


def test_a_late_but_alive_stream_is_waited_for():
    """Frames arriving 0.35 s late (a loaded link) are still nearest-matched, not counted as holes."""
    cams = {"images/front": (30.0, 0.4, 500.0)}
    streams = make_streams(cams, 100.0, 10.0)
    steps, al = run_live(streams, config_for(streams), latency={"images/front": 0.35})
    check_complete(steps, al, cams, 100.0)


def test_dead_stream_is_decided_after_max_wait_without_a_backlog():
    cams = {"images/front": (30.0, 0.0, 0.0)}
    streams = make_streams(cams, 100.0, 6.0, outage=("images/front", 3.0, 99.0))  # never comes back
    al = StreamAligner(config_for(streams, max_wait_s=0.3))
    al.arm()
    decided_by = {}
    for receive, name, stamp in arrivals(streams, 0):
        al.add(name, stamp, stamp, receive)
        al.poll(now=receive)
        decided_by[round(receive, 1)] = al._k  # grid steps decided so far
    # 1 s after the camera died (at 4.0 s receive time) the steps up to ~3.6 s are decided: no backlog
    assert decided_by[4.0] >= int(3.6 * RATE)
    assert al.stats.warmup_steps == 0 and al.stats.steps >= int(3.0 * RATE) - 2


def test_trailing_dead_stream_is_trimmed_and_named_and_warmup_is_counted():
    cams = {"images/front": (30.0, 0.0, 0.0)}
    streams = make_streams(cams, 100.0, 8.0, outage=("images/front", 6.0, 99.0))
    streams["action"] = streams["action"][streams["action"] > 0.5]  # the teleop starts late
    steps, al = run_live(streams, config_for(streams))
    assert al.stats.warmup_steps in (15, 16) and al.stats.warmup_streams == ("action",)
    assert 1.5 * RATE - 3 <= al.stats.trimmed_steps <= 1.5 * RATE  # camera dead from 6.0 s, save at 7.5 s
    assert al.stats.trimmed_streams == ("images/front",)
    assert al.stats.hole_steps == 0 and steps[0].index == 0


def test_out_of_order_and_duplicate_samples_are_dropped_and_counted():
    al = StreamAligner(AlignerConfig(10.0, ("state", "images/cam")))
    al.arm()
    for t in np.arange(0, 1.0, 0.1):
        al.add("state", t, t, t)
        al.add("images/cam", t + 0.01, t, t + 0.01)
    al.add("images/cam", 0.5, None, 1.0)  # older than the newest frame
    al.add("state", 0.9, None, 1.0)  # duplicate
    assert al.stats.out_of_order == {"state": 1, "images/cam": 1}


def test_offline_alignment_matches_the_live_recorder():
    cams = {"images/front": (29.97, 0.7, 0.0), "images/wrist": (30.03, 0.1, -1500.0)}
    streams = make_streams(cams, 50.0, 12.0, outage=("images/wrist", 5.0, 6.0))
    live, al = run_live(streams, config_for(streams))
    offline = align_samples({k: [(t, t) for t in v] for k, v in streams.items()}, config_for(streams),
                            start=live[0].grid_time, end=live[-1].grid_time)
    assert [s.index for s in offline.steps] == [s.index for s in live]
    assert [s.grid_time for s in offline.steps] == pytest.approx([s.grid_time for s in live])
    for a, b in zip(offline.steps, live):
        assert a.skew == pytest.approx(b.skew)
    assert offline.stats.holes == al.stats.holes and offline.grid_start == pytest.approx(live[0].grid_time)


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="reference stream"):
        AlignerConfig(10.0, ("action",))
    with pytest.raises(ValueError, match="max_skew_s must be > 0"):
        AlignerConfig(10.0, ("state",), max_skew_s=0.0)
    with pytest.raises(ValueError, match="unknown streams"):
        AlignerConfig(10.0, ("state",), max_skew_s={"images/x": 0.1})
    with pytest.raises(ValueError, match="unknown streams"):
        align_samples({"depth/x": []}, AlignerConfig(10.0, ("state",)))


def test_grid_follows_the_operators_clock_only_when_the_streams_are_stamped_on_it():
    """On a robot the stamps are ROS time: the grid runs from the start to the save as read on the
    node's clock, whatever the delivery lag. A twin running 2.5x real time (or 10 s off) stamps in
    its own time: then the grid starts at the first joint state after the start."""
    def feed(al, speed, offset, lag, seconds=3.0, stalls=False):
        """Joint states at 100 Hz arriving ``lag`` late (``stalls``: every second 0.3 s of them arrive in
        one late burst, as from a loaded machine), stamped on a clock running at ``speed``."""
        for k in range(int(seconds * 100)):
            host = 100.0 + k * 0.01
            stamp = offset + speed * (host - lag)
            if stalls and k % 100 < 30:
                host = 100.0 + (k - k % 100 + 30) * 0.01  # held back, delivered with the 30th
            al.add("state", stamp, None, receive=host)
        return 100.0 + seconds, offset + 100.0 + seconds  # host now, the node's (ROS) clock now

    al = StreamAligner(AlignerConfig(RATE, ("state",)))
    now, clock = feed(al, 1.0, 5000.0, lag=0.05, stalls=True)
    assert al.on_clock(clock, now)  # late bursts are not another clock
    for speed, lag, on in ((1.0, 0.15, True), (1.0, 1.5, True), (2.5, 0.0, False), (1.0, 10.0, False)):
        al = StreamAligner(AlignerConfig(RATE, ("state",)))
        now, clock = feed(al, speed, 5000.0, lag=lag)
        assert al.on_clock(clock, now) is on, (speed, lag)
        al.arm(clock_now=clock, now=now)
        assert al._t0 == (clock if on else None)  # else it waits for the first joint state


def test_a_sample_arriving_after_its_step_was_decided_is_counted_late():
    al = StreamAligner(AlignerConfig(10.0, ("state", "images/cam"), max_wait_s=0.2))
    al.arm()
    for k in range(20):
        t = k * 0.1
        al.add("state", t, t, receive=t)
        if k < 5:
            al.add("images/cam", t, t, receive=t)
        al.poll(now=t)
    assert al.stats.late["images/cam"] == 0
    al.add("images/cam", 0.6, 0.6, receive=2.0)  # its step went by long ago (counted as a hole meanwhile)
    assert al.stats.late["images/cam"] == 1 and al.stats.late["state"] == 0


def test_a_break_right_after_the_start_restarts_the_episode_instead_of_making_a_hole():
    """A fast twin's previous episode still in flight at start (0.2 s of samples), then the reset's
    1.5 s gap: those steps are warm-up and step 0 is after the gap. A break later is a hole."""
    def stamps(breaks):
        t = np.arange(0.0, 6.0, 1 / 30)
        keep = np.ones(len(t), bool)
        for lo, hi in breaks:
            keep &= ~((t > lo) & (t < hi))
        return t[keep]

    for breaks, first, holes in (([(0.2, 1.7)], 1.7, 0), ([(2.2, 3.7)], 0.0, 1)):
        t = stamps(breaks)
        result = align_samples({"state": [(x, x) for x in t], "images/cam": [(x, x) for x in t]},
                               AlignerConfig(RATE, ("state", "images/cam")))
        assert result.steps[0].index == 0 and result.steps[0].grid_time == pytest.approx(first, abs=0.04)
        assert len(result.stats.holes) == holes
        assert [s.index for s in result.steps] == sorted({s.index for s in result.steps})
    assert result.stats.warmup_steps == 0
