"""Demonstration recording: stream alignment, episode control, operator console and preview (no ROS here)."""
