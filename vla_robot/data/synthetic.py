"""Deterministic synthetic episodes for tests, benchmarks and docs (no robot needed).

Every value encodes where it came from (episode ``e``, step ``t``) so a reader can check
that it got exactly the frame it asked for: ``state[0] == e * 1000 + t`` and
``action[:] == e * 1000 + t + 0.5``; image frames are a smooth gradient shifted by ``t``
with brightness ``(e * 37 + t) % 200`` in the top-left 8x8 block.
"""

from __future__ import annotations

import numpy as np

from vla_robot.data.schema import CameraSpec, StoreSchema


def demo_schema(
    width: int = 64,
    height: int = 48,
    cameras: tuple[str, ...] = ("front", "wrist"),
    depth: bool = True,
    encoding: str = "jpeg",
    quality: int = 90,
    dof: int = 7,
    rate_hz: float = 30.0,
    robot: str = "synthetic-arm",
) -> StoreSchema:
    intr = {"fx": float(width), "fy": float(width), "cx": width / 2, "cy": height / 2, "width": width, "height": height}
    cams = [
        CameraSpec(name, width, height, intr, encoding=encoding, quality=quality, depth=depth and i == 0)
        for i, name in enumerate(cameras)
    ]
    joints = tuple(f"joint{i}" for i in range(dof - 1)) + ("gripper",)
    return StoreSchema(
        robot=robot,
        joint_names=joints,
        control_rate_hz=rate_hz,
        action_space={"type": "joint_position", "names": list(joints)},
        cameras=cams,
        state_dim=dof,
        action_dim=dof,
    )


def marker(e: int, t: int) -> int:
    return (e * 37 + t) % 200


def demo_image(h: int, w: int, e: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(w - 1, 1) + t) % 256
    img[..., 1] = yy * 255 // max(h - 1, 1)
    img[..., 2] = 128
    img[:8, :8] = marker(e, t)
    return img


def demo_step(schema: StoreSchema, e: int, t: int, rng: np.random.Generator | None = None) -> dict:
    """One valid step of synthetic episode ``e`` at step ``t``."""
    state = np.zeros(schema.state_dim, np.float32)
    state[0] = e * 1000 + t
    if rng is not None:
        state[1:] = rng.normal(size=schema.state_dim - 1)
    else:
        state[1:] = np.sin(np.arange(1, schema.state_dim) * 0.1 * t)
    action = np.full(schema.action_dim, e * 1000 + t + 0.5, np.float32)
    stamp = t / schema.control_rate_hz
    step = {
        "state": state,
        "action": action,
        "images": {c.name: demo_image(c.height, c.width, e, t) for c in schema.cameras},
        "depth": {c.name: np.full((c.height, c.width), 500 + t, np.uint16) for c in schema.cameras if c.depth},
        "stamp": stamp,
        "receive_stamp": stamp + 0.002,
    }
    return step


def write_demo_episodes(store, lengths: list[int], first_episode: int = 0, success: bool = True) -> None:
    """Record one synthetic episode per entry of ``lengths`` into an open (append-mode) store."""
    for k, n in enumerate(lengths):
        e = first_episode + k
        with store.begin_episode(f"touch the emoji {e}", operator="synthetic", task_id=e % 3, emoji_id="😀") as ep:
            for t in range(n):
                ep.append(demo_step(store.schema, e, t))
            ep.commit(success=success)
