"""ROS 2 packaging of vla-robot: the nodes themselves live in the ``vla_robot`` Python package
(``pip install vla-robot[ros]``); this package installs their executables, launch files and YAML."""
