"""Cross-embodiment robot data: another robot's state and action, mapped into the target robot's layout.

Stage 1 of the staged recipe pretrains on robot data, and the paper behind it ("Rethinking VLM
Representation for VLA Initialization") pretrains on a mixture of robots. Here a stage-1 store
may come from any robot (an SO-100 store before a WidowX task). Each store is normalised
with its own statistics (an SO-100 shoulder and a WidowX shoulder have different ranges: one
set of statistics would clip one of them), then placed into the target's action and state
vectors by role: arm joints in order into the target's arm slots, the gripper into the target's
gripper slot. Target dims the store's robot lacks are padded and masked out of the loss.

    so100  action [pan, lift, elbow, wrist_flex, wrist_roll, gripper]           (5 arm + gripper)
    widowx action [waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper]
    mapped so100  [pan, lift, elbow, wrist_flex, wrist_roll, <masked>, gripper]

The head keeps the target's width, so the bundle's contract stays the target robot's. A store
whose robot has more arm joints or grippers than the target cannot be mapped: the error says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.config import ConfigError
from vla_robot.models.normalization import Normalizer


def _is_gripper(name) -> bool:
    return "gripper" in str(name).lower()


@dataclass(frozen=True)
class Layout:
    """Which positions of a vector are arm joints and which are grippers."""

    arm: tuple[int, ...]
    gripper: tuple[int, ...]

    @property
    def width(self) -> int:
        return len(self.arm) + len(self.gripper)


def action_layout(schema, gripper_dims: list[int] | tuple[int, ...] | None = None) -> Layout:
    """Roles of the action dims: `gripper_dims` if given, else names containing "gripper"."""
    names = list(schema.action_space.get("names") or schema.joint_names)[: schema.action_dim]
    names += [f"dim{i}" for i in range(len(names), schema.action_dim)]
    grip = tuple(int(d) % schema.action_dim for d in gripper_dims) if gripper_dims is not None else \
        tuple(i for i, n in enumerate(names) if _is_gripper(n))
    return Layout(tuple(i for i in range(schema.action_dim) if i not in grip), grip)


def state_layout(schema) -> Layout:
    """Roles of the state dims: by joint name when the state is the joint vector, else all 'arm'."""
    names = list(schema.joint_names)
    if len(names) != schema.state_dim:
        return Layout(tuple(range(schema.state_dim)), ())
    grip = tuple(i for i, n in enumerate(names) if _is_gripper(n))
    return Layout(tuple(i for i in range(schema.state_dim) if i not in grip), grip)


def role_map(source: Layout, target: Layout, what: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(source indices, target indices): arm into arm slots in order, gripper into gripper slots."""
    if len(source.arm) > len(target.arm) or len(source.gripper) > len(target.gripper):
        raise ConfigError(
            f"{where}: its {what} has {len(source.arm)} arm + {len(source.gripper)} gripper dims, the target robot's "
            f"{len(target.arm)} + {len(target.gripper)}: a robot with more joints than the target cannot be "
            "mapped into the target's head. Pretrain on robots with at most the target's joints, or train "
            "with the wider robot as the target")
    src = list(source.arm) + list(source.gripper)
    dst = list(target.arm[: len(source.arm)]) + list(target.gripper[: len(source.gripper)])
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


class EmbodimentMap:
    """One store's samples → normalised with its own statistics and padded into the target layout.

    Output keys replace `action`/`state`/`goal_state`: `action_target` (H, D) normalised (arm in
    [-1, 1], gripper in [0, 1]), `action_dim_mask` (D,), `state_norm`/`goal_state_norm` (S,) and
    `state_dim_mask` (S,). `VLAModel.loss_terms` reads them instead of its own normaliser.
    """

    def __init__(self, schema, stats: dict, target_action: Layout, target_state: Layout | None, where: str,
                 use_state: bool):
        src_action = action_layout(schema)
        self.a_src, self.a_dst = role_map(src_action, target_action, "action", where)
        self.action_dim = target_action.width
        self.normalizer = Normalizer(stats, schema.action_dim, schema.state_dim if use_state else 0,
                                     src_action.gripper)
        self.use_state = use_state and target_state is not None
        if self.use_state:
            self.s_src, self.s_dst = role_map(state_layout(schema), target_state, "state", where)
            self.state_dim = target_state.width

    def _scatter(self, values: torch.Tensor, src: np.ndarray, dst: np.ndarray, width: int) -> torch.Tensor:
        out = values.new_zeros(*values.shape[:-1], width)
        out[..., torch.from_numpy(dst)] = values[..., torch.from_numpy(src)]
        return out

    def __call__(self, sample: dict) -> dict:
        sample = dict(sample)
        action = self.normalizer.normalise_action(sample.pop("action").float())
        sample["action_target"] = self._scatter(action, self.a_src, self.a_dst, self.action_dim)
        mask = torch.zeros(self.action_dim, dtype=torch.bool)
        mask[torch.from_numpy(self.a_dst)] = True
        sample["action_dim_mask"] = mask
        state, goal = sample.pop("state"), sample.pop("goal_state")
        if self.use_state:
            for key, value in (("state_norm", state), ("goal_state_norm", goal)):
                sample[key] = self._scatter(self.normalizer.normalise_state(value), self.s_src, self.s_dst,
                                            self.state_dim)
            smask = torch.zeros(self.state_dim, dtype=torch.bool)
            smask[torch.from_numpy(self.s_dst)] = True
            sample["state_dim_mask"] = smask
        return sample


def check_compatible(target_schema, schema, where: str) -> None:
    """Refuse mixtures whose actions mean different things (joint positions vs end-effector deltas)."""
    kinds = (target_schema.action_space.get("type"), schema.action_space.get("type"))
    if kinds[0] != kinds[1]:
        raise ConfigError(f"{where}: its actions are {kinds[1]!r}, the target robot's {kinds[0]!r}; one head "
                          "cannot learn both meanings. Convert the store (vla-data) or leave it out")
