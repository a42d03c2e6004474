"""Look at episodes: videos with the instruction overlaid, a contact sheet, trajectory plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vla_robot.data.store import EpisodeStore


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def caption(image: np.ndarray, text: str, size: int = 14) -> np.ndarray:
    """Draw ``text`` on a dark band at the top of ``image`` (uint8 HxWx3)."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    band = size + 6
    draw.rectangle([0, 0, pil.width, band], fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=_font(size))
    return np.asarray(pil)


def episode_frames(store: EpisodeStore, i: int, cameras: list[str] | None = None) -> np.ndarray:
    """All cameras side by side (resized to the first camera's height), one row per frame."""
    cams = cameras or list(store.schema.camera_names)
    import cv2

    views = []
    height = store.schema.camera(cams[0]).height
    for cam in cams:
        frames = store.read(f"images/{cam}", i)
        if frames.shape[1] != height:
            w = round(frames.shape[2] * height / frames.shape[1])
            frames = np.stack([cv2.resize(f, (w, height)) for f in frames])
        views.append(frames)
    return np.concatenate(views, axis=2)


def write_episode_video(store: EpisodeStore, i: int, path: str | Path, cameras: list[str] | None = None) -> Path:
    """MP4 (or GIF, by suffix) of episode ``i`` with its instruction and success flag overlaid."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = store.episode_meta(i)
    text = f"#{i} {meta.get('instruction', '')} [{'success' if meta.get('success') else 'fail'}]"
    frames = episode_frames(store, i, cameras)
    frames = np.stack([caption(f, text) for f in frames])
    fps = store.schema.control_rate_hz
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p")
    return path


def contact_sheet(
    store: EpisodeStore, path: str | Path, episodes: list[int] | None = None, columns: int = 4, thumb_height: int = 120
) -> Path:
    """One PNG: the middle frame of each episode with its index and instruction."""
    import cv2

    episodes = store.episode_indices() if episodes is None else episodes
    cam = store.schema.camera_names[0]
    thumbs = []
    for i in episodes:
        n = store.episode_length(i)
        frame = store.read(f"images/{cam}", i, np.array([n // 2]))[0]
        w = round(frame.shape[1] * thumb_height / frame.shape[0])
        thumb = cv2.resize(frame, (w, thumb_height))
        meta = store.episode_meta(i)
        thumbs.append(caption(thumb, f"#{i} {'ok' if meta.get('success') else 'x'} {meta.get('instruction', '')}", 10))
    if not thumbs:
        raise ValueError(f"{store.url} has no episodes for a contact sheet")
    rows = [thumbs[k : k + columns] for k in range(0, len(thumbs), columns)]
    blank = np.zeros_like(thumbs[0])
    grid = np.concatenate([np.concatenate(r + [blank] * (columns - len(r)), axis=1) for r in rows], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def plot_episode(store: EpisodeStore, i: int, path: str | Path) -> Path:
    """PNG with one panel per dimension: state and action against source time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = store.read_episode(i, keys=["state", "action", "stamps/state"])
    t = ep["stamps/state"][:, 0] - ep["stamps/state"][0, 0]
    schema = store.schema
    dims = max(schema.state_dim, schema.action_dim)
    names = list(schema.joint_names) + [f"dim{k}" for k in range(len(schema.joint_names), dims)]
    fig, axes = plt.subplots(dims, 1, figsize=(8, 1.6 * dims), sharex=True, squeeze=False)
    for d in range(dims):
        ax = axes[d, 0]
        if d < schema.state_dim:
            ax.plot(t, ep["state"][:, d], label="state")
        if d < schema.action_dim:
            ax.plot(t, ep["action"][:, d], "--", label="action")
        ax.set_ylabel(names[d], fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("source time [s]")
    fig.suptitle(f"episode {i}: {store.episode_meta(i).get('instruction', '')}"[:90], fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
