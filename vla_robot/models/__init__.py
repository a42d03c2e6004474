"""VLA model shared by training and the policy runtime: VLM + action queries + MLP head, and its bundle.

    from vla_robot.models import load_bundle
    model, info = load_bundle("runs/x/bundle", device="cuda", dtype=torch.bfloat16)
    chunk = model.predict_action({"front": uint8_bchw}, ["put the cube on the cat"], state)  # (B, H, D)
"""

from vla_robot.models.config import FAMILIES, TARGETS, VLAConfig

__all__ = ["FAMILIES", "TARGETS", "VLAConfig", "load_bundle", "save_bundle", "VLAModel", "BundleInfo"]


def __getattr__(name):
    if name in ("load_bundle", "save_bundle", "BundleInfo"):
        from vla_robot.models import bundle

        return getattr(bundle, name)
    if name == "VLAModel":
        from vla_robot.models.vla import VLAModel

        return VLAModel
    raise AttributeError(name)
