"""MuJoCo digital twin: WidowX 250 and SO-100 on the GrinningFace emoji table.

Public API::

    from sim import TwinConfig, Twin, TwinRobot, TwinCamera, ScriptedExpert, GrinningFaceEnv, summarise

See docs/twin.md.
"""

import os

# Offscreen rendering without a display: EGL unless the user chose otherwise (set before mujoco loads GL).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from sim.config import TwinConfig
from sim.twin import Twin
from sim.robot import TwinRobot
from sim.camera import TwinCamera
from sim.expert import ScriptedExpert
from sim.metrics import summarise

__all__ = ["TwinConfig", "Twin", "TwinRobot", "TwinCamera", "ScriptedExpert", "GrinningFaceEnv", "summarise", "emoji"]


def __getattr__(name: str):
    # gymnasium is imported only by whoever wants the env
    if name == "GrinningFaceEnv":
        from sim.env import GrinningFaceEnv

        return GrinningFaceEnv
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
