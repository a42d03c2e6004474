"""The data of one phase: per-store datasets, their sample maps, and the train/val stream datasets."""

from __future__ import annotations

from dataclasses import dataclass

from training.config import ConfigError, StoreRef, TrainConfig
from training.data import RenameCameras, StreamDataset
from vla_robot.models.config import VLAConfig


@dataclass
class PhaseData:
    train: StreamDataset
    val: StreamDataset | None
    weights: list[float]
    lengths: list[int]


def store_cameras(ref: StoreRef, model_cfg: VLAConfig, where: str) -> list[str]:
    if not ref.cameras:
        return list(model_cfg.cameras)
    if len(ref.cameras) != len(model_cfg.cameras):
        raise ConfigError(f"{where}.cameras {ref.cameras} must name one camera of the store for each of the "
                          f"model's cameras {list(model_cfg.cameras)}, in that order")
    return list(ref.cameras)


def phase_data(cfg: TrainConfig, model_cfg: VLAConfig, refs: list[StoreRef], maps: list | None, where: str,
               augment=None) -> PhaseData:
    """Train and val datasets of `refs`; `maps[i]` (training/embodiment.py) maps store i's samples."""
    from vla_robot.data.dataset import VLADataset

    size = (model_cfg.image_size, model_cfg.image_size)
    train, val, transforms, empty = [], [], [], []
    for i, ref in enumerate(refs):
        cams = store_cameras(ref, model_cfg, f"{where}[{i}]")
        rename = dict(zip(cams, model_cfg.cameras))
        mapping = maps[i] if maps else None
        transforms.append(RenameCameras(rename, mapping) if rename != {c: c for c in cams} or mapping else None)
        kw = dict(cameras=cams, image_size=size, horizon=model_cfg.horizon, val_fraction=cfg.data.val_fraction,
                  seed=cfg.data.split_seed)
        train.append(VLADataset(ref.url, split="train", **kw))
        val.append(VLADataset(ref.url, split="val", **kw))
        if len(train[-1]) == 0:
            empty.append(ref.url)
    if empty:
        raise ConfigError(f"{where}: no training episodes in {empty} (data.val_fraction too high?)")
    kept = [(d, t) for d, t in zip(val, transforms) if len(d)]
    val_data = StreamDataset([d for d, _ in kept], [t for _, t in kept]) if kept else None
    return PhaseData(StreamDataset(train, transforms, augment, cfg.seed, "robot"), val_data,
                     [r.weight for r in refs], [len(d) for d in train])
