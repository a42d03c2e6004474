"""Demonstration recording: stream alignment, episode control, operator console and preview (no ROS here).

Offline alignment of stamped samples (a rosbag, a log), the same code the recorder runs live::

    from vla_robot.recorder import AlignerConfig, align_samples
"""

from vla_robot.recorder.aligner import AlignedStep, AlignerConfig, Alignment, Hole, StreamAligner, align_samples

__all__ = ["AlignedStep", "AlignerConfig", "Alignment", "Hole", "StreamAligner", "align_samples"]
