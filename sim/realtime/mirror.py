"""``MirrorTwin``: the real-time twin's world, replayed in another process.

A camera node or the scripted teleop cannot share the arm node's MuJoCo data; they attach
to the twin's shared state block (``state_block.py``), build the same scene from the twin's
config, replay each episode's layout from its seed (cards, emojis, lighting, camera
jitter: ``Twin.reset(seed)`` is a pure function of the seed) and copy ``qpos`` in before
every use. A render of the mirror is then a render of the twin at that instant.
"""

from __future__ import annotations

import mujoco

from sim.config import TwinConfig
from sim.realtime.address import parse_twin_url
from sim.realtime.state_block import StateSample, TwinNotRunning, TwinStateBlock
from sim.twin import Twin


class MirrorTwin:
    """A read-only copy of a running twin, by address (``twin://...?name=x``) or bare name.

    ``cameras`` / ``camera_sizes`` choose what this process renders (the twin's host renders
    nothing); ``timeout_s`` waits for the twin to start, as a node launched before the arm does.
    """

    def __init__(self, address: str, cameras: tuple[str, ...] = (), camera_sizes: dict | None = None,
                 timeout_s: float = 0.0):
        self.address = parse_twin_url(address)
        self.block = TwinStateBlock.attach(self.address.name, timeout_s=timeout_s)
        shared = self.block.config
        config = dict(shared["twin"])
        config["cameras"] = list(cameras)
        config["camera_sizes"] = {name: list(size) for name, size in (camera_sizes or {}).items()}
        self.twin = Twin(TwinConfig.from_dict(config))
        self.servo_period_s = float(shared.get("servo_period_s", 0.004))
        self.episode: tuple[int, int] | None = None  # (episode index, seed) the scene is laid out for
        self.sample: StateSample | None = None

    @property
    def alive(self) -> bool:
        return self.block.alive

    def sync(self, at: float | None = None) -> StateSample:
        """Copy the twin's state at host time ``at`` (``time.monotonic``; None: the latest) in."""
        sample = self.block.latest() if at is None else self.block.at(at)
        if sample is None:
            if not self.block.alive:
                raise TwinNotRunning(f"twin {self.address.name!r} stopped (process {self.block.owner} is gone)")
            raise TwinNotRunning(f"twin {self.address.name!r} has published no state yet")
        if self.episode != (sample.episode, sample.seed):
            self.twin.reset(sample.seed)
            self.episode = (sample.episode, sample.seed)
        d = self.twin.data
        d.qpos[:] = sample.qpos
        d.time = sample.sim_time
        mujoco.mj_kinematics(self.twin.model, d)
        mujoco.mj_camlight(self.twin.model, d)
        self.sample = sample
        return sample

    def faults(self) -> dict:
        return self.block.faults()

    def close(self) -> None:
        self.twin.close()
        self.block.close()
