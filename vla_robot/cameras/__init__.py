"""One camera interface for RealSense, OpenCV/V4L2 and the twin's rendered cameras."""

from vla_robot.cameras.interface import Camera, CameraIntrinsics, Frame

__all__ = ["Camera", "CameraIntrinsics", "Frame"]
