"""vla-robot: collect demonstrations, train a VLA, deploy it, and test it all on a MuJoCo twin."""

__version__ = "0.1.0"
