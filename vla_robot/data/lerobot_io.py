"""Convert between this store and the LeRobotDataset v3 layout (``codebase_version`` "v3.0").

Export writes what lerobot's own writer writes: ``meta/info.json``, ``meta/stats.json``,
``meta/tasks.parquet``, ``meta/episodes/chunk-000/file-000.parquet``,
``data/chunk-000/file-000.parquet`` and one MP4 per camera and episode under
``videos/observation.images.<cam>/chunk-000/file-<episode>.mp4``. State and action
are stored as float32 and survive both ways bit-exactly; images are re-encoded (H.264
on export, our camera encoding on import). Needs ``pyarrow`` (the ``data`` extra).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from tqdm import tqdm

from vla_robot.data.schema import CameraSpec, StoreSchema
from vla_robot.data.stats import compute_stats
from vla_robot.data.store import EpisodeStore

CODEBASE_VERSION = "v3.0"
STATE_KEY, ACTION_KEY = "observation.state", "action"
IMAGE_PREFIX = "observation.images."
STAMPS_KEY = "vla_robot.stamps"  # (source, receive) per stream, so our timestamps survive a round trip
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("LeRobot conversion needs pyarrow: pip install 'vla-robot[data]'") from exc
    return pa, pq


def _names(names: Any, dim: int, prefix: str) -> list[str]:
    names = list(names or [])
    return names if len(names) == dim else [f"{prefix}_{i}" for i in range(dim)]


def _write_video(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(
        path,
        frames,
        plugin="FFMPEG",
        fps=fps,
        codec="libx264",
        macro_block_size=1,
        pixelformat="yuv420p",
        output_params=["-g", "2", "-crf", str(crf)],
    )


def _stats_json(values: dict[str, np.ndarray]) -> dict:
    out = {}
    for key, st in compute_stats(values).items():
        out[key] = {name: np.atleast_1d(v).tolist() for name, v in st.items()}
    return out


def _image_stats(frames: np.ndarray) -> dict:
    x = frames.astype(np.float64).reshape(-1, 3) / 255.0
    cols = {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "q01": np.quantile(x, 0.01, axis=0),
        "q99": np.quantile(x, 0.99, axis=0),
    }
    out = {k: v.reshape(3, 1, 1).tolist() for k, v in cols.items()}
    out["count"] = [int(len(frames))]
    return out


def to_lerobot(
    store: EpisodeStore,
    out_dir: str | Path,
    *,
    crf: int = 18,
    overwrite: bool = False,
    episodes: list[int] | None = None,
    progress: bool = True,
) -> Path:
    """Export committed (non-dropped) episodes to a LeRobotDataset v3 directory."""
    pa, pq = _pa()
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    schema = store.schema
    fps = float(schema.control_rate_hz)
    episodes = store.episode_indices() if episodes is None else list(episodes)
    if not episodes:
        raise ValueError(f"{store.url} has no episodes to export")
    state_names = _names(schema.joint_names, schema.state_dim, "state")
    action_names = _names(schema.action_space.get("names"), schema.action_dim, "action")
    tasks: dict[str, int] = {}
    columns: dict[str, list] = {
        k: []
        for k in (STATE_KEY, ACTION_KEY, STAMPS_KEY, "timestamp", "frame_index", "episode_index", "index", "task_index")
    }
    streams = schema.streams()
    episode_rows: list[dict] = []
    image_samples: dict[str, list[np.ndarray]] = {c.name: [] for c in schema.cameras}
    index = 0
    for new_ep, ep in enumerate(tqdm(episodes, desc="to-lerobot", disable=not progress)):
        meta = store.episode_meta(ep)
        n = store.episode_length(ep)
        steps = store.read("step_index", ep)
        if n and steps[-1] != n - 1:
            # LeRobot has no holes (its timestamps are frame_index / fps, its videos contiguous): the
            # frames run on across ours, and where they were is kept in vla_robot/meta for the way back.
            jumps = np.flatnonzero(np.diff(steps) > 1)
            meta["step_index_jumps"] = [[int(j) + 1, int(steps[j + 1] - steps[j] - 1)] for j in jumps]
            warnings.warn(f"episode {ep} has {len(jumps)} hole(s) ({int(steps[-1] + 1 - n)} grid steps); LeRobot's "
                          "timestamps run on across them (the holes are kept in vla_robot/meta)", stacklevel=2)
        task = meta.get("instruction", "")
        task_index = tasks.setdefault(task, len(tasks))
        columns[STATE_KEY].append(store.read("state", ep))
        columns[ACTION_KEY].append(store.read("action", ep))
        columns[STAMPS_KEY].append(np.concatenate([store.read(f"stamps/{st}", ep) for st in streams], axis=1))
        columns["timestamp"].append((np.arange(n) / fps).astype(np.float32))
        columns["frame_index"].append(np.arange(n, dtype=np.int64))
        columns["episode_index"].append(np.full(n, new_ep, np.int64))
        columns["index"].append(np.arange(index, index + n, dtype=np.int64))
        columns["task_index"].append(np.full(n, task_index, np.int64))
        row = {
            "episode_index": new_ep,
            "tasks": [task],
            "length": n,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": index,
            "dataset_to_index": index + n,
        }
        for cam in schema.cameras:
            key = IMAGE_PREFIX + cam.name
            frames = store.read(f"images/{cam.name}", ep)
            _write_video(out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=new_ep), frames, fps, crf)
            image_samples[cam.name].append(frames[:: max(1, n // 10)])
            row.update(
                {
                    f"videos/{key}/chunk_index": 0,
                    f"videos/{key}/file_index": new_ep,
                    f"videos/{key}/from_timestamp": 0.0,
                    f"videos/{key}/to_timestamp": n / fps,
                }
            )
        row.update(
            {
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "vla_robot/source_episode": ep,
                "vla_robot/meta": json.dumps(meta),
            }
        )
        episode_rows.append(row)
        index += n

    arrays = {k: np.concatenate(v) for k, v in columns.items()}
    fields = []
    for key, pa_type in ((STATE_KEY, pa.float32()), (ACTION_KEY, pa.float32()), (STAMPS_KEY, pa.float64())):
        flat = pa.array(arrays[key].reshape(-1), type=pa_type)
        fields.append((key, pa.FixedSizeListArray.from_arrays(flat, arrays[key].shape[1])))
    fields.append(("timestamp", pa.array(arrays["timestamp"], type=pa.float32())))
    for key in ("frame_index", "episode_index", "index", "task_index"):
        fields.append((key, pa.array(arrays[key], type=pa.int64())))
    data_path = out / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(dict(fields)), data_path)

    ep_path = out / "meta/episodes/chunk-000/file-000.parquet"
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
    task_names = sorted(tasks, key=tasks.get)
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "pandas_version": "2.2.0",
    }
    task_table = pa.table(
        {"task_index": pa.array([tasks[t] for t in task_names], pa.int64()), "task": pa.array(task_names, pa.string())}
    )
    task_table = task_table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(task_table, out / "meta/tasks.parquet")

    stats = _stats_json({k: arrays[k] for k in (STATE_KEY, ACTION_KEY, STAMPS_KEY)})
    stats.update(
        _stats_json(
            {k: arrays[k].reshape(-1, 1) for k in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
        )
    )
    for cam in schema.cameras:
        stats[IMAGE_PREFIX + cam.name] = _image_stats(np.concatenate(image_samples[cam.name]))
    (out / "meta/stats.json").write_text(json.dumps(stats, indent=2))

    features: dict[str, Any] = {
        STATE_KEY: {"dtype": "float32", "shape": [schema.state_dim], "names": state_names},
        ACTION_KEY: {"dtype": "float32", "shape": [schema.action_dim], "names": action_names},
        STAMPS_KEY: {
            "dtype": "float64",
            "shape": [2 * len(streams)],
            "names": [f"{st}.{kind}" for st in streams for kind in ("source", "receive")],
        },
    }
    for cam in schema.cameras:
        features[IMAGE_PREFIX + cam.name] = {
            "dtype": "video",
            "shape": [cam.height, cam.width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": cam.height,
                "video.width": cam.width,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    for key, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": schema.robot,
        "total_episodes": len(episodes),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": int(round(fps)) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
        "vla_robot": store._group.attrs["vla_robot"],
    }
    (out / "meta/info.json").write_text(json.dumps(info, indent=4))
    return out


def _read_tasks(pq, path: Path) -> dict[int, str]:
    table = pq.read_table(path)
    names = [c for c in table.column_names if c != "task_index"]
    if not names:
        raise ValueError(f"{path} has no task string column")
    return dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist()))


class _SequentialVideos:
    """Decode frames [first, first+n) of an MP4, continuing where the last episode of the same file ended."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._iter = None
        self._pos = 0

    def frames(self, path: Path, first: int, n: int) -> list[np.ndarray]:
        if path != self._path or first < self._pos:
            self._path, self._iter, self._pos = path, iter(iio.imiter(path, plugin="FFMPEG")), 0
        out = []
        for frame in self._iter:
            self._pos += 1
            if self._pos - 1 >= first:
                out.append(frame)
                if len(out) == n:
                    break
        return out


def from_lerobot(
    src_dir: str | Path,
    dst_url: str | Path,
    *,
    encoding: str = "jpeg",
    quality: int = 95,
    overwrite: bool = False,
    progress: bool = True,
) -> EpisodeStore:
    """Import a LeRobotDataset v3 directory (local) into a new store; returns it open in append mode."""
    _, pq = _pa()
    src = Path(src_dir)
    info_path = src / "meta/info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{src} is not a LeRobotDataset: {info_path} missing")
    info = json.loads(info_path.read_text())
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise ValueError(f"{src} is LeRobotDataset {info.get('codebase_version')!r}; only v3.x is supported")
    feats = info["features"]
    for key in (STATE_KEY, ACTION_KEY):
        if key not in feats:
            raise ValueError(f"{src} has no {key!r} feature; features are {sorted(feats)}")
    fps = float(info["fps"])
    cam_keys = [k for k, f in feats.items() if f["dtype"] == "video" and k.startswith(IMAGE_PREFIX)]
    skipped = [k for k, f in feats.items() if f["dtype"] == "image"]
    if skipped:
        warnings.warn(f"{src}: image (PNG-file) features {skipped} are not imported; only video features are")
    ours = info.get("vla_robot")
    if ours:
        schema = StoreSchema.from_attrs(ours)
    else:
        cams = []
        for key in cam_keys:
            h, w, _ = feats[key]["shape"]
            cams.append(
                CameraSpec(
                    key[len(IMAGE_PREFIX) :].replace("/", "_"), int(w), int(h), None, encoding=encoding, quality=quality
                )
            )
        state_dim, action_dim = feats[STATE_KEY]["shape"][0], feats[ACTION_KEY]["shape"][0]
        schema = StoreSchema(
            robot=info.get("robot_type") or "unknown",
            joint_names=tuple(_names(feats[STATE_KEY].get("names"), state_dim, "state")),
            control_rate_hz=fps,
            action_space={
                "type": "joint_position",
                "names": _names(feats[ACTION_KEY].get("names"), action_dim, "action"),
            },
            cameras=cams,
            state_dim=state_dim,
            action_dim=action_dim,
            extra={"imported_from": "lerobot", "lerobot_codebase_version": info["codebase_version"]},
        )
    tasks = _read_tasks(pq, src / "meta/tasks.parquet")
    ep_tables = [pq.read_table(p) for p in sorted((src / "meta/episodes").rglob("*.parquet"))]
    episode_rows = [row for t in ep_tables for row in t.to_pylist()]
    data_cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def data_file(chunk: int, file: int) -> dict[str, np.ndarray]:
        if (chunk, file) not in data_cache:
            table = pq.read_table(src / info["data_path"].format(chunk_index=chunk, file_index=file))
            cols = {}
            for name in (STATE_KEY, ACTION_KEY, STAMPS_KEY, "index", "timestamp", "task_index"):
                if name not in table.column_names:
                    continue
                col = table.column(name)
                nested = name in (STATE_KEY, ACTION_KEY, STAMPS_KEY)
                cols[name] = np.asarray(col.to_pylist() if nested else col.to_numpy())
            cols[STATE_KEY] = cols[STATE_KEY].astype(np.float32)
            cols[ACTION_KEY] = cols[ACTION_KEY].astype(np.float32)
            data_cache[(chunk, file)] = cols
        return data_cache[(chunk, file)]

    store = EpisodeStore.create(dst_url, schema, overwrite=overwrite)
    videos_reader = _SequentialVideos()
    for row in tqdm(sorted(episode_rows, key=lambda r: r["episode_index"]), desc="from-lerobot", disable=not progress):
        cols = data_file(row["data/chunk_index"], row["data/file_index"])
        sel = np.flatnonzero((cols["index"] >= row["dataset_from_index"]) & (cols["index"] < row["dataset_to_index"]))
        n = len(sel)
        videos = {}
        for cam, key in zip(schema.cameras, cam_keys if not ours else [IMAGE_PREFIX + c.name for c in schema.cameras]):
            path = src / info["video_path"].format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
            )
            first = int(round(row[f"videos/{key}/from_timestamp"] * fps))
            frames = videos_reader.frames(path, first, n)
            if len(frames) != n:
                raise ValueError(
                    f"{path}: episode {row['episode_index']} needs {n} frames from {first}, video has {len(frames)}"
                )
            videos[cam.name] = frames
        meta = json.loads(row["vla_robot/meta"]) if row.get("vla_robot/meta") else {}
        step_index = np.arange(n, dtype=np.int64)
        for position, missing in meta.pop("step_index_jumps", []):  # holes of an episode exported from here
            step_index[int(position):] += int(missing)
        task = tasks.get(int(cols["task_index"][sel[0]]), "") if n else ""
        writer = store.begin_episode(
            meta.get("instruction", task),
            operator=meta.get("operator", ""),
            task_id=meta.get("task_id"),
            emoji_id=meta.get("emoji_id"),
            extra={**meta.get("extra", {}), "lerobot_episode_index": int(row["episode_index"])},
        )
        streams = schema.streams()
        stamps = cols.get(STAMPS_KEY) if ours else None
        if stamps is not None and stamps.shape[1] != 2 * len(streams):
            stamps = None
        with writer:
            for j, i in enumerate(sel):
                stamp = float(cols["timestamp"][i])
                step = {
                    "state": cols[STATE_KEY][i],
                    "action": cols[ACTION_KEY][i],
                    "images": {c: v[j] for c, v in videos.items()},
                    "stamp": stamp,
                    "receive_stamp": stamp,
                    "step_index": int(step_index[j]),
                }
                if stamps is not None:
                    step["stamps"] = {st: (stamps[i, 2 * k], stamps[i, 2 * k + 1]) for k, st in enumerate(streams)}
                if any(c.depth for c in schema.cameras):
                    step["depth"] = {
                        c.name: np.zeros((c.height, c.width), np.uint16) for c in schema.cameras if c.depth
                    }
                writer.append(step)
            writer.commit(success=bool(meta.get("success", True)))
    return store
