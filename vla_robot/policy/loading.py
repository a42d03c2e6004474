"""Open any policy bundle directory as a ``ChunkPolicy``: a trained VLA or the expert replay."""

from __future__ import annotations

import json
from pathlib import Path

from vla_robot.policy.config import RuntimeConfig


def bundle_format(path: str | Path) -> str:
    meta_path = Path(path) / "bundle.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a policy bundle: no bundle.json (make one with vla-train)")
    return json.loads(meta_path.read_text()).get("format", "")


def load_policy(path: str | Path, config: RuntimeConfig | None = None):
    """The right policy class for the bundle at ``path``, on ``config.device`` in ``config.dtype``."""
    from vla_robot.policy.expert_replay import FORMAT as REPLAY_FORMAT

    kind = bundle_format(path)
    if kind == REPLAY_FORMAT:
        from vla_robot.policy.expert_replay import ExpertReplayPolicy

        return ExpertReplayPolicy.load(path)
    if kind == "vla-robot-policy":
        from vla_robot.policy.vla_policy import VLAPolicy

        return VLAPolicy.load(path, config)
    raise ValueError(f"{path}: unknown bundle format {kind!r}; expected 'vla-robot-policy' or {REPLAY_FORMAT!r}")
