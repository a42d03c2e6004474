"""Chunk scheduling and merging on synthetic chunks with known timing."""

import numpy as np
import pytest

from vla_robot.policy.config import ChunkConfig
from vla_robot.policy.scheduler import ChunkScheduler


def ramp(start_value: float, h: int = 8, d: int = 2) -> np.ndarray:
    """Chunk whose action k is (start_value + k) in every dim: the value names the step it was made for."""
    return np.repeat((start_value + np.arange(h, dtype=float))[:, None], d, axis=1)


def test_zero_delay_executes_every_action_once_in_order():
    s = ChunkScheduler(8, 2, ChunkConfig(merge="latest", request_threshold=0.0))
    executed = []
    for step in range(24):
        if s.should_request(step):
            s.mark_requested(step)
            s.add_chunk(ramp(step), obs_step=step, arrival_step=step)
        executed.append(s.action_for(step)[0])
    assert executed == list(range(24))
    assert s.chunks_received == 3 and s.stale_skipped == 0


def test_stale_actions_skipped_by_measured_delay():
    s = ChunkScheduler(8, 2, ChunkConfig(merge="latest"))
    skipped = s.add_chunk(ramp(10), obs_step=10, arrival_step=13)
    assert skipped == 3
    assert s.action_for(12) is None  # nothing was ever meant to run before arrival
    assert s.action_for(13)[0] == 13.0  # the action made for step 13, not the chunk's first
    assert s.stale_skipped == 3
    assert s.delays == [3]


def test_chunk_older_than_its_length_is_dropped_entirely():
    s = ChunkScheduler(4, 1, ChunkConfig())
    assert s.add_chunk(ramp(0, 4, 1), obs_step=0, arrival_step=9) == 4
    assert s.dropped_chunks == 1 and s.pending(9) == 0 and s.action_for(9) is None


def test_latest_wins_on_overlap():
    s = ChunkScheduler(8, 1, ChunkConfig(merge="latest"))
    s.add_chunk(np.full((8, 1), 1.0), obs_step=0, arrival_step=0)
    s.add_chunk(np.full((8, 1), 5.0), obs_step=4, arrival_step=4)
    assert s.action_for(3)[0] == 1.0
    assert s.action_for(4)[0] == 5.0  # overlap region: newest wins
    assert s.action_for(11)[0] == 5.0


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_weighted_prefers_newer_and_ensemble_prefers_older(decay):
    old, new = np.full((8, 1), 0.0), np.full((8, 1), 1.0)
    results = {}
    for mode in ("weighted", "ensemble"):
        s = ChunkScheduler(8, 1, ChunkConfig(merge=mode, decay=decay))
        s.add_chunk(old, obs_step=0, arrival_step=0)
        s.add_chunk(new, obs_step=2, arrival_step=2)
        results[mode] = float(s.action_for(5)[0])
        assert s.merged_steps == 1
    w_newer = 1.0 / (1.0 + np.exp(-decay))  # weight of the newer chunk under "weighted"
    assert results["weighted"] == pytest.approx(w_newer)
    assert results["ensemble"] == pytest.approx(1.0 - w_newer)
    if decay > 0:
        assert results["weighted"] > 0.5 > results["ensemble"]


def test_act_temporal_ensemble_matches_reference_formula():
    """ACT queries every step; step t averages every chunk's prediction for t with w_i = exp(-m i)."""
    m, h = 0.3, 5
    rng = np.random.default_rng(0)
    chunks = {t: rng.normal(size=(h, 1)) for t in range(10)}
    s = ChunkScheduler(h, 1, ChunkConfig(merge="ensemble", decay=m, request_threshold=1.0))
    for t in range(10):
        assert s.should_request(t)
        s.mark_requested(t)
        s.add_chunk(chunks[t], obs_step=t, arrival_step=t)
        got = s.action_for(t)[0]
        preds = [chunks[t0][t - t0, 0] for t0 in range(max(0, t - h + 1), t + 1)]  # oldest first
        w = np.exp(-m * np.arange(len(preds)))
        assert got == pytest.approx(float(w @ preds / w.sum()))


def test_request_threshold_and_single_flight():
    s = ChunkScheduler(10, 1, ChunkConfig(request_threshold=0.3))
    assert s.should_request(0)
    s.mark_requested(0)
    assert not s.should_request(0)  # one inference in flight at a time
    s.add_chunk(ramp(0, 10, 1), obs_step=0, arrival_step=0)
    requested_at = next(t for t in range(10) if s.should_request(t))
    assert requested_at == 7  # pending = 3 <= 0.3 * 10
    assert s.pending(7) == 3


def test_async_pipeline_with_known_inference_delay_has_no_gaps_and_no_repeats():
    """Inference takes 2 steps; with a 50 % threshold the next chunk lands before the queue drains."""
    h, delay = 8, 2
    s = ChunkScheduler(h, 1, ChunkConfig(merge="latest", request_threshold=0.5))
    in_flight = None
    executed = []
    for step in range(40):
        if in_flight is not None and step == in_flight + delay:
            s.add_chunk(ramp(in_flight, h, 1), obs_step=in_flight, arrival_step=step)
            in_flight = None
        if s.should_request(step):
            s.mark_requested(step)
            in_flight = step
        a = s.action_for(step)
        executed.append(None if a is None else a[0])
    assert executed[:delay] == [None, None]  # only the very first chunk is waited for
    assert executed[delay:] == list(range(delay, 40))  # every later step runs the action made for it
    assert s.stale_skipped == delay * s.chunks_received


def test_execute_steps_caps_chunk_use():
    s = ChunkScheduler(8, 1, ChunkConfig(execute_steps=3, request_threshold=0.0))
    s.add_chunk(ramp(0, 8, 1), obs_step=0, arrival_step=0)
    assert [s.action_for(t) is not None for t in range(5)] == [True, True, True, False, False]


def test_bad_inputs_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="merge"):
        ChunkConfig(merge="average")
    with pytest.raises(ValueError, match="request_threshold"):
        ChunkConfig(request_threshold=1.5)
    s = ChunkScheduler(4, 2)
    with pytest.raises(ValueError, match=r"shape \(H, 2\)"):
        s.add_chunk(np.zeros((4, 3)), 0, 0)
    with pytest.raises(ValueError, match="before its observation"):
        s.add_chunk(np.zeros((4, 2)), 5, 4)
