"""Store format 2: per-step grid index (holes) and skew; the training reader never crosses a hole;
format-1 stores stay readable and are upgraded for appending; clean-up of stray files is decided by
what a zarr store may hold, not by zarr's temp-file names."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from vla_robot.data import EpisodeStore, StepValidationError, VLADataset
from vla_robot.data.cli import main as vla_data
from vla_robot.data.synthetic import demo_schema, demo_step, write_demo_episodes
from vla_robot.data.tools import merge

HOLE = (6, 10)  # grid steps 6..9 of episode 1 were not stored


def write_holey(store: EpisodeStore, e: int, n_stored: int, hole: tuple[int, int] | None) -> None:
    """``n_stored`` steps; grid steps in ``hole`` skipped; action[0] encodes the grid step."""
    with store.begin_episode(f"episode {e}") as ep:
        k = 0
        for t in range(n_stored):
            if hole and k == hole[0]:
                k = hole[1]
            step = demo_step(store.schema, e, k)
            step["action"][:] = e * 1000 + k + 0.5
            step["state"][0] = e * 1000 + k
            step["step_index"] = k
            step["skew"] = {s: 0.001 * (k % 5) for s in store.schema.streams()}
            ep.append(step)
            k += 1
        ep.commit(success=True)


@pytest.fixture
def holey(tmp_path: Path) -> str:
    url = str(tmp_path / "holey.zarr")
    store = EpisodeStore.create(url, demo_schema(depth=False), shard_frames=8)
    write_holey(store, 0, 8, None)
    write_holey(store, 1, 16, HOLE)
    store.close()
    return url


def test_step_index_and_skew_round_trip_and_metadata(holey: str) -> None:
    store = EpisodeStore.open(holey)
    assert store.format_version == 2 and "step_index" in store.data_keys() and "skew/images/front" in store.data_keys()
    steps = store.read("step_index", 1)
    np.testing.assert_array_equal(steps, [0, 1, 2, 3, 4, 5] + list(range(10, 20)))
    np.testing.assert_allclose(store.read("skew/state", 1), 0.001 * (steps % 5), atol=1e-7)
    meta = store.episode_meta(1)
    assert meta["num_frames"] == 16 and meta["grid_steps"] == 20 and meta["hole_steps"] == 4
    assert store.episode_meta(0)["hole_steps"] == 0
    np.testing.assert_array_equal(store.step_index(), np.concatenate([np.arange(8), steps]))


def test_writer_refuses_bad_step_indices_and_skews(tmp_path: Path) -> None:
    store = EpisodeStore.create(tmp_path / "bad.zarr", demo_schema(depth=False), shard_frames=8)
    ep = store.begin_episode("bad")
    step = demo_step(store.schema, 0, 0)
    with pytest.raises(StepValidationError, match="first step has step_index 0"):
        ep.append({**step, "step_index": 3})
    ep.append({**step, "step_index": 0})
    with pytest.raises(StepValidationError, match="must be above the previous step's 0"):
        ep.append({**step, "step_index": 0})
    with pytest.raises(StepValidationError, match="expected an int"):
        ep.append({**step, "step_index": 1.0})
    with pytest.raises(StepValidationError, match="skew/images/side.*unknown stream"):
        ep.append({**step, "skew": {"images/side": 0.0}})
    ep.append(step)  # no step_index: the next one; no skew: NaN (not aligned)
    ep.commit(success=True)
    assert store.read("step_index", 0).tolist() == [0, 1]
    assert np.isnan(store.read("skew/action", 0)).all()


def test_training_reader_never_builds_a_chunk_across_a_hole(holey: str) -> None:
    ds = VLADataset(holey, cameras=["front"], horizon=5, history=3, split="all")
    assert len(ds) == 8 + 16
    for index in range(len(ds)):
        ref, t = ds.locate(index)
        sample = ds[index]
        grid = sample["state"][0].item() - 1000 * ref.episode
        actions = sample["action"][:, 0].numpy() - 1000 * ref.episode - 0.5
        real = actions[~sample["action_is_pad"].numpy()]
        np.testing.assert_array_equal(real, grid + np.arange(len(real)))  # consecutive grid steps only
        past = sample["state_history"][:, 0].numpy() - 1000 * ref.episode
        hist_real = past[~sample["history_is_pad"].numpy()]
        np.testing.assert_array_equal(hist_real, grid - len(hist_real) + np.arange(len(hist_real)))
    before = ds[8 + 4]  # episode 1, grid step 4: steps 4, 5 stored; 6..9 are the hole
    assert before["action_is_pad"].tolist() == [False, False, True, True, True]
    np.testing.assert_array_equal(before["action"][:, 0].numpy(), [1004.5, 1005.5, 1005.5, 1005.5, 1005.5])
    after = ds[8 + 6]  # grid step 10, first after the hole: no history from before it
    assert after["state"][0] == 1010 and after["history_is_pad"].tolist() == [True, True, True]
    assert after["state_history"][:, 0].tolist() == [1010.0] * 3
    assert after["action_is_pad"].tolist() == [False] * 5


def test_validate_reports_holes_as_warnings_and_merge_keeps_them(holey: str, tmp_path: Path, capsys) -> None:
    assert vla_data(["validate", holey]) == 0
    assert "episode 1: 4 grid steps (0.13 s) missing in 1 marked hole(s)" in capsys.readouterr().out
    dst = EpisodeStore.create(tmp_path / "merged.zarr", demo_schema(depth=False), shard_frames=8)
    merge(dst, [EpisodeStore.open(holey)], progress=False)
    src = EpisodeStore.open(holey)
    for i in range(2):
        np.testing.assert_array_equal(dst.read("step_index", i), src.read("step_index", i))
        np.testing.assert_array_equal(dst.read("skew/images/front", i), src.read("skew/images/front", i))
    assert dst.episode_meta(1)["hole_steps"] == 4


def make_v1_store(url: str) -> None:
    """A store as format 1 wrote it: no step_index / skew arrays, version 1."""
    store = EpisodeStore.create(url, demo_schema(depth=False), shard_frames=8)
    write_demo_episodes(store, [9, 11])
    store.close()
    group = zarr.open_group(url, mode="r+")
    for name in ["step_index"] + [f"skew/{s}" for s in store.schema.streams()]:
        del group[f"data/{name}"]
    attrs = dict(group.attrs["vla_robot"])
    attrs["format"] = {"name": "vla-robot-episodes", "version": 1}
    group.attrs["vla_robot"] = attrs
    for i in range(2):
        info = group["meta/episode_info"]
        meta = json.loads(str(info[i]))
        meta.pop("grid_steps"), meta.pop("hole_steps")
        info[i] = json.dumps(meta)


def test_format_1_store_is_read_as_contiguous_and_upgraded_for_appending(tmp_path: Path, caplog) -> None:
    url = str(tmp_path / "v1.zarr")
    make_v1_store(url)
    old = EpisodeStore.open(url)
    assert old.format_version == 1 and "step_index" not in old.data_keys()
    np.testing.assert_array_equal(old.read("step_index", 1), np.arange(11))
    assert old.read("skew/state", 1).shape == (11,) and np.isnan(old.read("skew/state", 1)).all()
    np.testing.assert_array_equal(old.step_index(), np.concatenate([np.arange(9), np.arange(11)]))
    ds = VLADataset(url, cameras=["front"], horizon=4, split="all")
    assert ds[8]["action_is_pad"].tolist() == [False, True, True, True]  # the episode end still pads
    assert vla_data(["validate", url, "--quiet"]) == 0
    state = old.read("state", 1)

    with caplog.at_level(logging.WARNING, logger="vla_robot.data.store"):
        store = EpisodeStore.open(url, mode="a")
    assert "upgraded from format 1 to 2" in caplog.text and store.format_version == 2
    write_demo_episodes(store, [5], first_episode=2)
    store.close()
    new = EpisodeStore.open(url)
    assert new.format_version == 2 and new.num_episodes == 3
    np.testing.assert_array_equal(new.read("state", 1), state)
    np.testing.assert_array_equal(new.step_index(), np.concatenate([np.arange(9), np.arange(11), np.arange(5)]))
    assert np.isnan(new.read("skew/state", 0)).all()


def test_clean_up_removes_stray_files_whatever_their_name_and_keeps_the_rest(tmp_path: Path) -> None:
    url = Path(tmp_path / "stray.zarr")
    store = EpisodeStore.create(url, demo_schema(depth=False), shard_frames=8)
    write_demo_episodes(store, [10, 12])
    store.close()
    before = {k: EpisodeStore.open(url).read_episode(1)[k] for k in ("state", "images/front", "step_index")}
    stray = [
        url / "data" / "state" / "c" / "0" / "0.3f2a9c.partial",  # zarr <= 3.2 temp-file naming
        url / "data" / "images" / "front" / "c" / "1" / "tmp_x8Yq",  # any other naming
        url / "data" / "step_index" / "c" / ".0.swp",
        url / "data" / "images" / "zarr.json.tmp",
        url / "meta" / "episode_ends" / "c" / "junk",
    ]
    for path in stray:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a write")
    notes = url / "NOTES.txt"
    notes.write_text("the operator's notes stay")
    store = EpisodeStore.open(url, mode="a")
    assert not any(p.exists() for p in stray) and notes.exists()
    after = store.read_episode(1)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
    assert store.num_episodes == 2 and not math.isnan(float(after["state"][0, 0]))
