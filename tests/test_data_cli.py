"""`vla-data` commands, run through main([...]) on real stores."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from vla_robot.data import EpisodeStore
from vla_robot.data.cli import main
from vla_robot.data.synthetic import demo_schema, demo_step, write_demo_episodes


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    s = EpisodeStore.create(tmp_path / "demo.zarr", demo_schema(), shard_frames=8)
    write_demo_episodes(s, [12, 9, 10, 8])
    s.close()
    return str(tmp_path / "demo.zarr")


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "validate", "view", "plot", "merge", "split", "drop-episode", "to-lerobot", "from-lerobot"):
        assert cmd in out


def test_info_reports_counts_size_and_compression(store_path: str, capsys) -> None:
    assert main(["info", store_path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 4 and info["frames"] == 39 and info["successes"] == 4
    assert info["duration_total_s"] == pytest.approx(39 / 30)
    assert info["cameras"][0] == "front 64x48 jpeg q90 +depth(zstd)"
    assert info["bytes_on_disk"] > 0 and info["compression_ratio"] > 1.5
    assert main(["info", store_path]) == 0 and "compression" in capsys.readouterr().out


def test_validate_passes_good_store_and_fails_bad_ones(store_path: str, tmp_path: Path, capsys) -> None:
    assert main(["validate", store_path, "--quiet", "--decode-images"]) == 0
    bad = EpisodeStore.create(tmp_path / "bad.zarr", demo_schema(robot="widowx250"), shard_frames=8)
    with bad.begin_episode("stamps go backwards and a frame is dropped") as ep:
        for t in range(10):
            step = demo_step(bad.schema, 0, t)
            step["state"][:] = 0.02  # inside every widowx250 limit ...
            if t == 7:
                step["stamps"] = {"images/front": (0.01, 0.5)}  # camera clock jumps back
            if t >= 8:
                step["stamp"] += 3 / 30.0  # three frames lost
            ep.append(step)
        ep.commit(success=True)
    with bad.begin_episode("arm out of its limits") as ep:
        for t in range(5):
            step = demo_step(bad.schema, 1, t)
            step["state"][:] = 0.02
            step["state"][1] = 3.0  # shoulder beyond 1.99 rad
            ep.append(step)
        ep.commit(success=False)
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "bad.zarr"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "episode 0: images/front source timestamps go backwards at step 7" in out
    assert "episode 0: state dropped about 3 frames" in out
    assert "episode 1: state out of widowx250 joint limits (joint1 at step 0" in out


def test_view_writes_videos_with_overlay_and_contact_sheet(store_path: str, tmp_path: Path) -> None:
    out = tmp_path / "view"
    assert main(["view", store_path, "--out", str(out), "--episodes", "0-1"]) == 0
    video = iio.imread(out / "episode_00000.mp4", plugin="FFMPEG")
    assert video.shape[0] == 12 and video.shape[2] == 128  # two 64-wide cameras side by side
    assert video[:, :8, 40:].mean() < 60  # the caption band is dark ...
    assert video[:, :20, :].max() > 200  # ... with white text in it
    sheet = np.asarray(Image.open(out / "contact_sheet.png"))
    assert sheet.shape[0] == 120 and sheet.shape[1] == 4 * 160
    assert main(["view", store_path, "--out", str(out), "--episodes", "2", "--format", "gif"]) == 0
    assert iio.imread(out / "episode_00002.gif").shape[0] == 10


def test_plot_writes_png(store_path: str, tmp_path: Path) -> None:
    assert main(["plot", store_path, "--out", str(tmp_path / "p"), "--episodes", "1"]) == 0
    image = np.asarray(Image.open(tmp_path / "p" / "episode_00001.png"))
    assert image.shape[0] > 400 and image.std() > 10


def test_merge_split_and_drop(store_path: str, tmp_path: Path, capsys) -> None:
    other = EpisodeStore.create(tmp_path / "other.zarr", demo_schema(), shard_frames=8)
    write_demo_episodes(other, [6, 7], first_episode=20)
    other.close()
    assert main(["merge", store_path, str(tmp_path / "other.zarr")]) == 0
    merged = EpisodeStore.open(store_path)
    assert merged.num_episodes == 6
    np.testing.assert_array_equal(merged.read("state", 5)[:, 0], 21000 + np.arange(7))
    np.testing.assert_array_equal(
        merged.read("stamps/images/front", 4), EpisodeStore.open(tmp_path / "other.zarr").read("stamps/images/front", 0)
    )
    assert merged.episode_meta(4)["instruction"] == "touch the emoji 20"

    assert main(["drop-episode", store_path, "1,3", "--rewrite", str(tmp_path / "compact.zarr")]) == 0
    dropped = EpisodeStore.open(store_path)
    assert dropped.num_episodes == 6 and dropped.episode_indices() == [0, 2, 4, 5]
    compact = EpisodeStore.open(tmp_path / "compact.zarr")
    assert compact.num_episodes == 4
    np.testing.assert_array_equal(compact.read("state", 1)[:, 0], 2000 + np.arange(10))

    assert main(["split", store_path, "--out", str(tmp_path / "parts"), "--val-fraction", "0.3"]) == 0
    train = EpisodeStore.open(tmp_path / "parts/train.zarr")
    val = EpisodeStore.open(tmp_path / "parts/val.zarr")
    assert train.num_episodes + val.num_episodes == 4 and val.num_episodes >= 1
    instr = lambda s: {s.episode_meta(i)["instruction"] for i in range(s.num_episodes)}  # noqa: E731
    assert not instr(train) & instr(val)


def test_errors_are_one_line_messages(tmp_path: Path, capsys) -> None:
    assert main(["info", str(tmp_path / "nope.zarr")]) == 2
    assert "no episode store" in capsys.readouterr().err
