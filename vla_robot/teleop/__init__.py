"""Teleoperation logic without ROS: leader-follower, end-effector (Joy/Twist/keyboard) and the scripted expert."""
