"""Thin rclpy node shells over the plain-Python logic in cameras/, robots/, teleop/ and recorder/.

Shared helpers (message conversion, QoS, diagnostics, executors) live here so every node,
the policy node included, converts and reports the same way.
"""
