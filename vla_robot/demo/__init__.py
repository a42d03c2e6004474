"""The main job end to end (`vla-robot demo`) and the update-strategy study (`vla-robot study`).

Both only orchestrate: every phase is its own command (`vla-robot collect`,
`python -m training.prior`, `vla-train`, `vla-robot eval`, `vla-data view`) run as a
subprocess, so any phase can be rerun alone or swapped for an engineer's own data or a
hub VLM, and nothing in `vla_robot` imports `training`.
"""
