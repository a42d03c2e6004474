"""LeRobotDataset v3 interop: layout round trip here, and with the REAL lerobot library when available.

lerobot pins torch < 2.11, so it lives in its own virtualenv; set LEROBOT_PYTHON to that
venv's python to run the real-library test (see docs/dataset-format.md for the CI recipe).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_robot.data import EpisodeStore
from vla_robot.data.lerobot_io import from_lerobot, to_lerobot
from vla_robot.data.synthetic import demo_schema, marker, write_demo_episodes

LENGTHS = [12, 9, 15]


@pytest.fixture
def store(tmp_path: Path) -> EpisodeStore:
    s = EpisodeStore.create(tmp_path / "demo.zarr", demo_schema(depth=False), shard_frames=8)
    write_demo_episodes(s, LENGTHS)
    return s


def test_export_layout_and_roundtrip(store: EpisodeStore, tmp_path: Path) -> None:
    out = to_lerobot(store, tmp_path / "lerobot", progress=False)
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 30 and info["total_frames"] == sum(LENGTHS)
    assert info["features"]["observation.state"]["shape"] == [7]
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.column_names == [
        "observation.state",
        "action",
        "vla_robot.stamps",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    state = np.asarray(data.column("observation.state").to_pylist(), np.float32)
    np.testing.assert_array_equal(state, np.concatenate([store.read("state", e) for e in range(3)]))
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == LENGTHS and episodes[1]["dataset_from_index"] == 12
    assert pq.read_table(out / "meta/tasks.parquet").column("task").to_pylist()[2] == "touch the emoji 2"
    video = iio.imread(out / "videos/observation.images.wrist/chunk-000/file-002.mp4", plugin="FFMPEG")
    assert video.shape == (15, 48, 64, 3)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["action"]["max"][0] == pytest.approx(2014.5)

    back = from_lerobot(out, tmp_path / "back.zarr", progress=False)
    assert back.num_episodes == 3 and back.schema.camera_names == ("front", "wrist")
    for e, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(back.read("state", e), store.read("state", e))  # bit-exact
        np.testing.assert_array_equal(back.read("action", e), store.read("action", e))
        got = back.read("images/front", e)[:, 2:6, 2:6].astype(float).mean(axis=(1, 2, 3))
        assert np.abs(got - [marker(e, t) for t in range(n)]).max() <= 5  # JPEG -> H.264 -> JPEG
        meta = back.episode_meta(e)
        assert meta["instruction"] == f"touch the emoji {e}" and meta["emoji_id"] == "😀" and meta["task_id"] == e % 3


LEROBOT_CHILD = textwrap.dedent(
    """
    import json, os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    mode, root = sys.argv[1], sys.argv[2]
    if mode == "load":
        ds = LeRobotDataset("local/vla_export", root=root, video_backend="torchcodec")
        rows = [ds[i] for i in range(len(ds))]
        print(json.dumps({
            "len": len(ds), "episodes": ds.num_episodes, "fps": ds.fps,
            "state": [r["observation.state"].tolist() for r in rows],
            "action": [r["action"].tolist() for r in rows],
            "task": [r["task"] for r in rows],
            "front_px": [float(r["observation.images.front"][:, 2:6, 2:6].mean()) * 255 for r in rows],
        }))
    else:
        features = {
            "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
            "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
            "observation.images.top": {"dtype": "video", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
        }
        ds = LeRobotDataset.create("local/by_lerobot", fps=30, root=root, robot_type="so100", features=features, use_videos=True)
        rng = np.random.default_rng(0)
        state, action = [], []
        for e in range(2):
            for t in range(11 + 3 * e):
                s, a = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
                state.append(s.tolist()); action.append(a.tolist())
                ds.add_frame({"observation.state": s, "action": a, "task": f"lerobot task {e}",
                              "observation.images.top": np.full((48, 64, 3), 8 * t, np.uint8)})
            ds.save_episode()
        ds.finalize()
        print(json.dumps({"state": state, "action": action}))
    """
)


def run_lerobot(python: str, mode: str, root: Path) -> dict:
    proc = subprocess.run([python, "-c", LEROBOT_CHILD, mode, str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not os.environ.get("LEROBOT_PYTHON"), reason="set LEROBOT_PYTHON to the lerobot interop venv (`make lerobot-env`)"
)
def test_real_lerobot_loads_our_export_and_we_import_its_dataset(store: EpisodeStore, tmp_path: Path) -> None:
    python = os.environ["LEROBOT_PYTHON"]
    out = to_lerobot(store, tmp_path / "export", progress=False)
    loaded = run_lerobot(python, "load", out)
    assert loaded["len"] == sum(LENGTHS) and loaded["episodes"] == 3 and loaded["fps"] == 30
    expected_state = np.concatenate([store.read("state", e) for e in range(3)])
    np.testing.assert_array_equal(np.asarray(loaded["state"], np.float32), expected_state)
    np.testing.assert_array_equal(
        np.asarray(loaded["action"], np.float32), np.concatenate([store.read("action", e) for e in range(3)])
    )
    assert loaded["task"][12] == "touch the emoji 1"
    want = [marker(e, t) for e, n in enumerate(LENGTHS) for t in range(n)]
    assert np.abs(np.asarray(loaded["front_px"]) - want).max() <= 5  # lerobot decoded the right frames

    written = run_lerobot(python, "write", tmp_path / "by_lerobot")
    imported = from_lerobot(tmp_path / "by_lerobot", tmp_path / "imported.zarr", progress=False)
    assert imported.num_episodes == 2 and imported.schema.robot == "so100" and imported.schema.camera_names == ("top",)
    state = np.concatenate([imported.read("state", e) for e in range(2)])
    np.testing.assert_array_equal(state, np.asarray(written["state"], np.float32))  # frame-exact
    np.testing.assert_array_equal(
        np.concatenate([imported.read("action", e) for e in range(2)]), np.asarray(written["action"], np.float32)
    )
    assert imported.episode_meta(1)["instruction"] == "lerobot task 1" and imported.episode_length(1) == 14
    top = imported.read("images/top", 1)[:, 20, 30, 0].astype(int)
    assert np.abs(top - 8 * np.arange(14)).max() <= 6


def test_roundtrip_keeps_per_stream_source_and_receive_stamps(store: EpisodeStore, tmp_path: Path) -> None:
    out = to_lerobot(store, tmp_path / "lerobot", progress=False)
    back = from_lerobot(out, tmp_path / "back.zarr", progress=False)
    for e in range(3):
        for stream in store.schema.streams():
            np.testing.assert_array_equal(back.read(f"stamps/{stream}", e), store.read(f"stamps/{stream}", e))
