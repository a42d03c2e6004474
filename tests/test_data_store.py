"""Episode store format: layout, round trip, append validation, version and corruption errors, memory://."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from vla_robot.data import (
    CameraSpec,
    CorruptEpisodeError,
    EpisodeStore,
    FormatVersionError,
    StepValidationError,
    StoreError,
    StoreSchema,
)
from vla_robot.data.synthetic import demo_schema, demo_step, marker, write_demo_episodes

LENGTHS = [5, 13, 20]  # crosses shard boundaries (shard_frames=8) inside and between episodes


def mixed_schema() -> StoreSchema:
    intr = {"fx": 60.0, "fy": 60.0, "cx": 32.0, "cy": 24.0}
    return StoreSchema(
        robot="widowx250",
        joint_names=tuple(f"j{i}" for i in range(7)),
        control_rate_hz=30.0,
        action_space={"type": "joint_position"},
        cameras=[
            CameraSpec("front", 64, 48, intr, encoding="jpeg", quality=95, depth=True),
            CameraSpec("wrist", 32, 24, None, encoding="png"),
        ],
        state_dim=7,
        action_dim=7,
    )


@pytest.fixture
def store(tmp_path: Path) -> EpisodeStore:
    s = EpisodeStore.create(tmp_path / "demo.zarr", mixed_schema(), shard_frames=8)
    write_demo_episodes(s, LENGTHS)
    yield s
    s.close()


def test_roundtrip_values_and_replaybuffer_layout(store: EpisodeStore, tmp_path: Path) -> None:
    assert store.num_episodes == 3 and store.num_frames == sum(LENGTHS)
    for e, n in enumerate(LENGTHS):
        ep = store.read_episode(e)
        t = np.arange(n)
        np.testing.assert_array_equal(ep["state"][:, 0], e * 1000 + t)
        np.testing.assert_array_equal(ep["action"], np.repeat((e * 1000 + t + 0.5)[:, None], 7, 1).astype(np.float32))
        np.testing.assert_array_equal(ep["depth/front"][:, 0, 0], 500 + t)  # lossless
        expected_wrist = np.stack([demo_step(store.schema, e, k)["images"]["wrist"] for k in t])
        np.testing.assert_array_equal(ep["images/wrist"], expected_wrist)  # png: lossless
        expected_front = np.stack([demo_step(store.schema, e, k)["images"]["front"] for k in t])
        assert np.abs(ep["images/front"].astype(int) - expected_front).mean() < 3.0  # jpeg q95
        np.testing.assert_allclose(ep["stamps/images/front"][:, 0], t / 30.0)
        np.testing.assert_allclose(ep["stamps/images/front"][:, 1], t / 30.0 + 0.002)
        meta = store.episode_meta(e)
        assert meta["instruction"] == f"touch the emoji {e}" and meta["success"] is True
        assert meta["num_frames"] == n and meta["robot"] == "widowx250" and meta["emoji_id"] == "😀"
        assert meta["duration_s"] == pytest.approx(n / 30.0)

    # The raw layout is the diffusion_policy ReplayBuffer one, readable with plain zarr.
    raw = zarr.open_group(store.url, mode="r")
    np.testing.assert_array_equal(raw["meta/episode_ends"][:], np.cumsum(LENGTHS))
    assert raw["data/state"].shape == (sum(LENGTHS), 7)
    attrs = raw.attrs["vla_robot"]
    assert attrs["format"] == {"name": "vla-robot-episodes", "version": 2}
    assert attrs["joint_names"] == [f"j{i}" for i in range(7)] and attrs["control_rate_hz"] == 30.0
    assert attrs["cameras"][0]["intrinsics"]["fx"] == 60.0 and attrs["cameras"][1]["encoding"] == "png"
    images = raw["data/images/front"]
    assert images.chunks == (1, 48, 64, 3) and images.shards == (8, 48, 64, 3)
    assert images.metadata.to_dict()["codecs"][0]["configuration"]["codecs"][0]["name"] == "vla_robot.image"
    assert raw["data/depth/front"].dtype == np.uint16
    shard_files = [p for p in (Path(store.url) / "data/images/front/c").rglob("*") if p.is_file()]
    assert len(shard_files) == int(np.ceil(sum(LENGTHS) / 8))  # 38 frames -> 5 shard files, not 38


def test_reopen_and_append_keeps_earlier_episodes(store: EpisodeStore) -> None:
    url = store.url
    store.close()
    with EpisodeStore.open(url, mode="a") as s:
        write_demo_episodes(s, [4], first_episode=3)
    r = EpisodeStore.open(url)
    assert r.num_episodes == 4
    for e, n in enumerate(LENGTHS + [4]):
        np.testing.assert_array_equal(r.read("state", e)[:, 0], e * 1000 + np.arange(n))


def good_step(schema: StoreSchema, t: int) -> dict:
    return demo_step(schema, 0, t)


def _bad(kind: str, step: dict) -> dict:
    if kind == "state_dtype":
        step["state"] = step["state"].astype(np.float64)
    elif kind == "action_shape":
        step["action"] = step["action"][:5]
    elif kind == "action_nan":
        step["action"][2] = np.nan
    elif kind == "state_missing":
        del step["state"]
    elif kind == "camera_missing":
        del step["images"]["wrist"]
    elif kind == "camera_unknown":
        step["images"]["top"] = step["images"]["front"]
    elif kind == "image_shape":
        step["images"]["front"] = np.zeros((48, 64, 4), np.uint8)
    elif kind == "image_dtype":
        step["images"]["front"] = step["images"]["front"].astype(np.float32)
    elif kind == "image_encoded":
        step["images"]["front"] = b"\xff\xd8\xff\xe0 jpeg bytes"
    elif kind == "depth_dtype":
        step["depth"]["front"] = step["depth"]["front"].astype(np.float32)
    elif kind == "depth_missing":
        step["depth"] = {}
    elif kind == "stamps_missing":
        del step["stamp"], step["receive_stamp"]
    elif kind == "stamp_unknown_stream":
        step["stamps"] = {"lidar": (0.0, 0.0)}
    return step


BAD_CASES = {
    "state_dtype": ("state", "float32"),
    "action_shape": ("action", "shape"),
    "action_nan": ("action", "NaN"),
    "state_missing": ("state", "missing"),
    "camera_missing": ("images/wrist", "missing camera frame"),
    "camera_unknown": ("images/top", "unknown camera"),
    "image_shape": ("images/front", "(48, 64, 3)"),
    "image_dtype": ("images/front", "uint8"),
    "image_encoded": ("images/front", "encoded bytes"),
    "depth_dtype": ("depth/front", "uint16"),
    "depth_missing": ("depth/front", "missing depth"),
    "stamps_missing": ("stamps/state", "missing timestamps"),
    "stamp_unknown_stream": ("stamps/lidar", "unknown stream"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CASES))
def test_bad_append_is_rejected_naming_key_and_step(tmp_path: Path, kind: str) -> None:
    s = EpisodeStore.create(tmp_path / "s.zarr", mixed_schema(), shard_frames=8)
    key, words = BAD_CASES[kind]
    with s.begin_episode("x") as ep:
        for t in range(3):
            ep.append(good_step(s.schema, t))
        with pytest.raises(StepValidationError) as info:
            ep.append(_bad(kind, good_step(s.schema, 3)))
        assert info.value.step == 3 and info.value.key == key
        assert "step 3" in str(info.value) and repr(key) in str(info.value) and words in str(info.value)
        ep.append(good_step(s.schema, 3))  # the writer is still usable after a rejected step
        ep.commit(success=False)
    assert s.num_episodes == 1 and s.episode_length(0) == 4


def test_exception_in_with_block_discards_episode(tmp_path: Path) -> None:
    s = EpisodeStore.create(tmp_path / "s.zarr", demo_schema(), shard_frames=8)
    write_demo_episodes(s, [6])
    with pytest.raises(RuntimeError, match="operator aborted"):
        with s.begin_episode("doomed") as ep:
            for t in range(20):
                ep.append(demo_step(s.schema, 9, t))
            raise RuntimeError("operator aborted")
    assert s.num_episodes == 1
    write_demo_episodes(s, [3], first_episode=1)  # overwrites the discarded frames
    np.testing.assert_array_equal(s.read("state", 1)[:, 0], 1000 + np.arange(3))
    got = s.read("images/front", 1)[:, 2, 2, 0].astype(int)
    assert np.abs(got - [marker(1, t) for t in range(3)]).max() <= 4  # not episode 9's stale frames (133+)


def test_empty_commit_and_readonly_writes_are_refused(tmp_path: Path) -> None:
    s = EpisodeStore.create(tmp_path / "s.zarr", demo_schema())
    ep = s.begin_episode("nothing")
    with pytest.raises(ValueError, match="no steps"):
        ep.commit(success=True)
    with pytest.raises(StoreError, match="still being written"):
        s.begin_episode("second at once")
    ep.discard()
    with pytest.raises(StoreError, match="already open for writing"):
        EpisodeStore.open(s.url, mode="a")
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(s.url).begin_episode("x")
    with pytest.raises(StoreError, match="already exists"):
        EpisodeStore.create(s.url, demo_schema())


def test_schema_validation_names_allowed_values() -> None:
    with pytest.raises(ValueError, match="jpegxl"):
        CameraSpec("c", 4, 4, encoding="webp")
    with pytest.raises(ValueError, match="joint_position"):
        StoreSchema("r", ("a",), 30.0, {"type": "torque"}, [], 1, 1)


def test_newer_format_version_is_a_clear_error(store: EpisodeStore) -> None:
    url = store.url
    store.close()
    raw = zarr.open_group(url, mode="r+")
    attrs = dict(raw.attrs["vla_robot"])
    attrs["format"] = {"name": "vla-robot-episodes", "version": 99}
    raw.attrs["vla_robot"] = attrs
    with pytest.raises(FormatVersionError, match="version 99.*up to 2"):
        EpisodeStore.open(url)


def test_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(StoreError, match="not a vla-robot episode store"):
        EpisodeStore.open(tmp_path / "plain.zarr")
    with pytest.raises(StoreError, match="no episode store"):
        EpisodeStore.open(tmp_path / "missing.zarr")


def test_corrupted_chunk_error_names_the_episode(store: EpisodeStore) -> None:
    # Episode 2 spans frames 18..37; frame 30 lives in shard 3 (frames 24..31).
    shard = sorted(
        p for p in (Path(store.url) / "data/images/front/c").rglob("*") if p.is_file() and p.parts[-4] == "3"
    )
    assert shard, "expected shard 3 of data/images/front"
    data = bytearray(shard[0].read_bytes())
    data[100:400] = b"\x00" * 300  # zero out part of the first frame's JPEG
    shard[0].write_bytes(bytes(data))
    r = EpisodeStore.open(store.url)
    with pytest.raises(CorruptEpisodeError, match=r"episode 2: key 'images/front'"):
        r.read_episode(2)
    np.testing.assert_array_equal(r.read("state", 2)[:, 0], 2000 + np.arange(20))  # other keys still readable
    info = Path(store.url) / "meta/episode_info/c/0"
    info.write_bytes(b"garbage")
    with pytest.raises(CorruptEpisodeError, match="episode 1: key 'meta/episode_info'"):
        EpisodeStore.open(store.url).episode_meta(1)


def test_memory_fsspec_store_uses_the_same_code(tmp_path: Path) -> None:
    url = "memory://vla-test/remote.zarr"
    s = EpisodeStore.create(url, demo_schema(), shard_frames=8, overwrite=True)
    write_demo_episodes(s, [9, 4])
    r = EpisodeStore.open(url)
    assert r.url == url and r.num_episodes == 2
    np.testing.assert_array_equal(r.read("state", 1)[:, 0], 1000 + np.arange(4))
    assert r.read("depth/front", 0)[:, 3, 3].tolist() == [500 + t for t in range(9)]
    assert r.stats()["state"]["count"] == 13
    from vla_robot.data import VLADataset

    ds = VLADataset(url, cameras=["front"], horizon=3, split="all")
    assert len(ds) == 13 and ds[12]["action"][0, 0].item() == 1003.5
    import fsspec

    assert fsspec.filesystem("memory").exists("/vla-test/remote.zarr/meta/episode_ends/zarr.json")


def test_stats_match_numpy_and_are_stored_once(store: EpisodeStore) -> None:
    eps = [store.read_episode(e, keys=["state", "action"]) for e in range(3)]
    state = np.concatenate([e["state"] for e in eps]).astype(np.float64)
    stats = store.stats()
    np.testing.assert_allclose(stats["state"]["mean"], state.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["state"]["std"], state.std(0), rtol=1e-12)
    np.testing.assert_allclose(stats["state"]["q01"], np.quantile(state, 0.01, axis=0))
    np.testing.assert_allclose(stats["state"]["q99"], np.quantile(state, 0.99, axis=0))
    np.testing.assert_array_equal(stats["action"]["min"], np.concatenate([e["action"] for e in eps]).min(0))
    np.testing.assert_array_equal(stats["action"]["max"], np.concatenate([e["action"] for e in eps]).max(0))
    stored = zarr.open_group(store.url, mode="r")["meta"].attrs["stats"]
    assert stored["key"]["num_frames"] == sum(LENGTHS)
    assert json.dumps(stored)  # plain JSON in the store
    np.testing.assert_allclose(EpisodeStore.open(store.url).stats()["state"]["mean"], state.mean(0))
    with EpisodeStore.open(store.url) as reader:  # read-only: computed in memory, never written
        reader.stats()
    store.drop_episode(1)  # stats go stale and are recomputed without the dropped episode
    kept = np.concatenate([eps[0]["state"], eps[2]["state"]]).astype(np.float64)
    np.testing.assert_allclose(store.stats()["state"]["mean"], kept.mean(0))
    assert store.episode_indices() == [0, 2] and store.episode_indices(include_dropped=True) == [0, 1, 2]


def test_writer_copies_frames_so_callers_may_reuse_buffers(tmp_path: Path) -> None:
    s = EpisodeStore.create(tmp_path / "s.zarr", demo_schema(encoding="png"), shard_frames=8)
    image = np.zeros((48, 64, 3), np.uint8)  # one buffer reused for every frame, like a camera driver
    state = np.zeros(7, np.float32)
    with s.begin_episode("reuse") as ep:
        for t in range(11):
            step = demo_step(s.schema, 0, t)
            image[:] = t
            state[:] = t
            step["images"]["front"], step["state"] = image, state
            ep.append(step)
        ep.commit(success=True)
    assert s.read("images/front", 0)[:, 5, 5, 0].tolist() == list(range(11))
    assert s.read("state", 0)[:, 3].tolist() == list(range(11))


def test_direct_shard_writer_is_used_and_zarr_reads_its_shards(store: EpisodeStore) -> None:
    from vla_robot.data.shardwrite import ShardWriter

    for key in ("images/front", "images/wrist", "depth/front"):
        assert isinstance(store._shard_writer(key, store._array(f"data/{key}")), ShardWriter), key
    assert store._shard_writer("state", store._array("data/state")) is None
    # zarr's own reader (index crc32c check included) decodes what the shard writer wrote
    raw = zarr.open_group(store.url, mode="r")
    np.testing.assert_array_equal(
        raw["data/depth/front"][:, 1, 1], np.concatenate([500 + np.arange(n) for n in LENGTHS])
    )
    np.testing.assert_array_equal(
        raw["data/images/wrist"][:], np.concatenate([store.read("images/wrist", e) for e in range(3)])
    )


def test_closing_a_writable_store_stores_current_stats(tmp_path: Path) -> None:
    s = EpisodeStore.create(tmp_path / "s.zarr", demo_schema(), shard_frames=8)
    write_demo_episodes(s, [6, 7])
    s.close()
    stored = zarr.open_group(tmp_path / "s.zarr", mode="r")["meta"].attrs["stats"]
    assert stored["key"]["num_frames"] == 13
    assert stored["stats"]["state"]["max"][0] == 1006.0
