"""Shared tiny fixtures for the model/training tests: random real-class backbones and small real stores."""

from __future__ import annotations

import torch

from vla_robot.models.config import VLAConfig
from vla_robot.models.vla import VLAModel

S, A, H = 7, 7, 4


def toy_stats(action_dim: int = A, state_dim: int = S) -> dict:
    return {
        "action": {"q01": [-1.0] * action_dim, "q99": [1.0] * action_dim, "min": [-1.0] * action_dim,
                   "max": [1.0] * action_dim, "mean": [0.0] * action_dim, "std": [1.0] * action_dim},
        "state": {"mean": [0.0] * state_dim, "std": [1.0] * state_dim},
    }


def tiny_vla(backbone_dir, family: str, target: str = "continuous", cameras=("front",)) -> VLAModel:
    cfg = VLAConfig(family=family, backbone=str(backbone_dir), action_dim=A, horizon=H, state_dim=S, cameras=cameras,
                    image_size=32, num_action_queries=4, head_hidden=32, gripper_dims=(-1,), target=target)
    torch.manual_seed(0)
    return VLAModel.from_pretrained_backbone(cfg, toy_stats())


def robot_batch(model: VLAModel, batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    images = {c: torch.randint(0, 256, (batch, 3, 40, 48), dtype=torch.uint8, generator=g) for c in model.config.cameras}
    instructions = ["put the cube on the grinning face", "put the block on the cat"][:batch] + ["x"] * max(0, batch - 2)
    return {
        "images": images,
        "instructions": instructions,
        "inputs": model.preprocess(images, instructions),
        "state": torch.randn(batch, S, generator=g),
        "action": torch.rand(batch, H, A, generator=g) * 2 - 1,
        "action_is_pad": torch.zeros(batch, H, dtype=torch.bool),
    }


def write_store(path, lengths=(10, 12, 11, 10), size: int = 32):
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.synthetic import demo_schema, write_demo_episodes

    store = EpisodeStore.create(str(path), demo_schema(width=size, height=size, cameras=("front",), depth=False))
    write_demo_episodes(store, list(lengths))
    store.close()
    return str(path)


def record_twin_store(path, episodes: int = 2, steps: int = 12, size: int = 32, seed: int = 0) -> str:
    """Record scripted-expert episodes from the MuJoCo twin with the real episode writer."""
    import numpy as np

    from sim.config import TwinConfig
    from sim.expert import ScriptedExpert
    from sim.robot import TwinRobot
    from sim.twin import Twin
    from vla_robot.data.schema import CameraSpec, StoreSchema
    from vla_robot.data.store import EpisodeStore

    twin = Twin(TwinConfig(cameras=("third_person",), image_size=(size, size), seed=seed))
    robot = TwinRobot(twin)
    robot.connect()
    expert = ScriptedExpert(twin)
    spec = twin.spec
    dof = len(spec.joint_names)
    schema = StoreSchema(robot=spec.name, joint_names=tuple(spec.joint_names), control_rate_hz=twin.config.control_rate_hz,
                         action_space={"type": "joint_position", "names": list(spec.joint_names)},
                         cameras=(CameraSpec("front", size, size, encoding="png"),), state_dim=dof, action_dim=dof)
    store = EpisodeStore.create(str(path), schema)
    for e in range(episodes):
        info = twin.reset(seed + e)
        with store.begin_episode(info["instruction"], task_id=info["task"], emoji_id=info["target"]) as ep:
            for _ in range(steps):
                state = robot.read_state()
                image = twin.render("third_person")
                action = np.asarray(expert.act(state), dtype=np.float32)
                ep.append({"state": state.positions.astype(np.float32), "action": action, "images": {"front": image},
                           "stamp": state.stamp, "receive_stamp": state.stamp})
                robot.send_joint_targets(action)
            ep.commit(success=True)
    store.close()
    twin.close()
    return str(path)
