"""The real-time policy runtime: one inference step, chunk scheduling, safety, latency.

The same objects drive a real arm (through ROS 2 or in one process), the twin, and
closed-loop evaluation, so what is measured in evaluation is what runs on the robot.
Heavy imports (torch, transformers, sim, rclpy) happen in the submodules that need them.
"""
