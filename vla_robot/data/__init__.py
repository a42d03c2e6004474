"""Zarr episode store: record demonstrations crash-safely, read them fast for training.

Layout (diffusion_policy ReplayBuffer): ``data/<key>`` concatenated along time,
``meta/episode_ends`` written last as the commit point. Full spec: docs/dataset-format.md.

Record::

    from vla_robot.data import CameraSpec, EpisodeStore, StoreSchema

    schema = StoreSchema(
        robot="widowx250", joint_names=spec.joint_names, control_rate_hz=30.0,
        action_space={"type": "joint_position", "names": list(spec.joint_names)},
        cameras=[CameraSpec("front", 640, 480, intrinsics.as_dict(), encoding="jpeg", quality=90, depth=True)],
        state_dim=7, action_dim=7,
    )
    store = EpisodeStore.create("demos.zarr", schema)        # or EpisodeStore.open(url, mode="a")
    with store.begin_episode("pick up the grinning face", operator="ana", task_id=3, emoji_id="😀") as ep:
        for t in ...:
            ep.append({
                "state": q.astype(np.float32), "action": target.astype(np.float32),
                "images": {"front": rgb_uint8_hwc}, "depth": {"front": depth_uint16_hw},
                "stamp": source_time, "receive_stamp": host_time,   # default for every stream
                "stamps": {"images/front": (cam_source, cam_receive)},  # optional per-stream override
            })
        ep.commit(success=True)     # an exception in the block discards the episode instead

Read::

    store = EpisodeStore.open("demos.zarr")                   # or "memory://x", "s3://bucket/x"
    store.num_episodes, store.episode_meta(0), store.episode_slice(0)
    ep = store.read_episode(0, keys=["state", "action", "images/front"])   # dict of numpy arrays
    store.stats()["action"]["q99"]                            # per-dimension, computed once and stored

Train::

    ds = VLADataset(["a.zarr", "b.zarr"], cameras=["front"], image_size=(224, 224), horizon=10, split="train")
    loader = DataLoader(ds, batch_size=32, num_workers=2, collate_fn=collate)

Errors: ``StepValidationError`` (bad append: names key and step), ``StoreWriteError`` (disk
full / permission; committed episodes intact), ``FormatVersionError`` (store from a newer
version), ``CorruptEpisodeError`` (unreadable chunk; names the episode).
"""

from vla_robot.data.codecs import ImageCodec
from vla_robot.data.errors import (
    CorruptEpisodeError,
    FormatVersionError,
    StepValidationError,
    StoreError,
    StoreWriteError,
)
from vla_robot.data.schema import FORMAT_VERSION, CameraSpec, StoreSchema
from vla_robot.data.store import EpisodeStore
from vla_robot.data.writer import EpisodeWriter

__all__ = [
    "FORMAT_VERSION",
    "CameraSpec",
    "CorruptEpisodeError",
    "EpisodeStore",
    "EpisodeWriter",
    "FormatVersionError",
    "ImageCodec",
    "StepValidationError",
    "StoreError",
    "StoreSchema",
    "StoreWriteError",
    "VLADataset",
    "collate",
]


def __getattr__(name: str):
    # torch is imported only by the training reader, so recorders stay light.
    if name in ("VLADataset", "collate"):
        from vla_robot.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'vla_robot.data' has no attribute {name!r}")
