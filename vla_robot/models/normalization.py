"""Action/state normalisation as a module whose buffers travel with the weights.

Arm dims map [q01, q99] → [-1, 1] (robust to outliers, as in OpenVLA/pi0); gripper dims
map [min, max] → [0, 1] so they can be trained with BCE. State uses mean/std, after the state
is clipped into the range the training data covered. The same object normalises targets in
training and de-normalises predictions at deployment, so the two can never disagree.

Why the clip (issue 17, measured on the demo): the demonstrations never turn the WidowX
forearm roll (state std 0.0003 rad), so in closed loop a 0.02 rad nudge from grasping the
cube reached the policy as a 50-110 sigma input, and the arm then missed the grasp or let go
off the card. The same bundle executed 59 of 100 episodes as it was and 90 of 100 with its
state clipped into the training range (replacing only the forearm roll by its mean: 83).
Flooring the state std at 1 % of each joint's travel instead, and retraining, did not do
better (77 of 100, one seed) and blurred small-data fits, so the clip is the fix.
"""

from __future__ import annotations

import torch
from torch import nn

REQUIRED_KEYS = {"action": ("q01", "q99", "min", "max"), "state": ("mean", "std")}
_EPS = 1e-6


def check_stats(stats: dict | None, action_dim: int, state_dim: int) -> None:
    """Raise a clear error when statistics are missing or have the wrong size."""
    if not stats:
        raise ValueError("normalisation stats are missing: compute them with `store.stats()` (or pass `stats=`)")
    needed = {"action": action_dim, "state": state_dim}
    for key, dim in needed.items():
        if dim == 0:
            continue
        if key not in stats:
            raise ValueError(f"normalisation stats lack {key!r}; have {sorted(stats)}")
        for stat in REQUIRED_KEYS[key]:
            if stat not in stats[key]:
                raise ValueError(f"normalisation stats[{key!r}] lack {stat!r}; need {REQUIRED_KEYS[key]}")
            if len(stats[key][stat]) != dim:
                raise ValueError(f"stats[{key!r}][{stat!r}] has {len(stats[key][stat])} values, the model expects {dim}")


class Normalizer(nn.Module):
    """Normalise states and actions; de-normalise predicted chunks. No host syncs, static shapes."""

    def __init__(self, stats: dict, action_dim: int, state_dim: int, gripper_dims: tuple[int, ...] = ()):
        super().__init__()
        check_stats(stats, action_dim, state_dim)
        a = {k: torch.as_tensor(stats["action"][k], dtype=torch.float32) for k in REQUIRED_KEYS["action"]}
        is_gripper = torch.zeros(action_dim, dtype=torch.bool)
        is_gripper[list(gripper_dims)] = True
        low = torch.where(is_gripper, a["min"], a["q01"])
        high = torch.where(is_gripper, a["max"], a["q99"])
        self.register_buffer("action_low", low)
        self.register_buffer("action_scale", (high - low).clamp_min(_EPS))
        self.register_buffer("is_gripper", is_gripper)
        if state_dim:
            st = stats["state"]
            self.register_buffer("state_mean", torch.as_tensor(st["mean"], dtype=torch.float32))
            self.register_buffer("state_std", torch.as_tensor(st["std"], dtype=torch.float32).clamp_min(_EPS))
            # rebuilt from the stats at load (not persistent), so bundles from before the clip still load
            has_range = "min" in st and "max" in st  # stats files with mean/std only: no clip
            low = st["min"] if has_range else [-float("inf")] * state_dim
            high = st["max"] if has_range else [float("inf")] * state_dim
            self.register_buffer("state_low", torch.as_tensor(low, dtype=torch.float32), persistent=False)
            self.register_buffer("state_high", torch.as_tensor(high, dtype=torch.float32), persistent=False)
        else:
            self.register_buffer("state_mean", torch.zeros(0))
            self.register_buffer("state_std", torch.ones(0))
            self.register_buffer("state_low", torch.zeros(0), persistent=False)
            self.register_buffer("state_high", torch.zeros(0), persistent=False)
        self.stats = {k: {n: torch.as_tensor(v).tolist() for n, v in d.items()} for k, d in stats.items()}

    def normalise_state(self, state: torch.Tensor) -> torch.Tensor:
        """Clipped into the training data's [min, max], then standardised: the head never sees a
        proprio value it was not trained on (a missed grasp closes the gripper below anything the
        demonstrations held)."""
        state = torch.maximum(torch.minimum(state.float(), self.state_high), self.state_low)
        return (state - self.state_mean) / self.state_std

    def normalise_action(self, action: torch.Tensor) -> torch.Tensor:
        """Physical actions → training targets: arm in [-1, 1] (clipped), gripper in [0, 1]."""
        unit = ((action.float() - self.action_low) / self.action_scale).clamp(0.0, 1.0)
        return torch.where(self.is_gripper, unit, unit * 2.0 - 1.0)

    def denormalise(self, pred: torch.Tensor) -> torch.Tensor:
        """Head output (arm in [-1, 1], gripper logits) → physical actions."""
        pred = pred.float()
        unit = torch.where(self.is_gripper, torch.sigmoid(pred), (pred.clamp(-1.0, 1.0) + 1.0) * 0.5)
        return unit * self.action_scale + self.action_low

    def to_unit_range(self, action: torch.Tensor) -> torch.Tensor:
        """Physical → [-1, 1] on every dim (the discrete target's binning range)."""
        return ((action.float() - self.action_low) / self.action_scale).clamp(0.0, 1.0) * 2.0 - 1.0

    def from_unit_range(self, unit: torch.Tensor) -> torch.Tensor:
        return (unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * self.action_scale + self.action_low

