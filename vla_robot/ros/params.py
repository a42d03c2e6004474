"""Declare a node's parameters from one dict of defaults, the single place they are named.

The launch-file static test imports these dicts to check every parameter a launch file or
YAML sets really exists.
"""

from __future__ import annotations

from types import SimpleNamespace


def declare(node, defaults: dict, overrides: dict | None = None) -> SimpleNamespace:
    """Declare every parameter (typed by its default) and return their current values."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{node.get_name()}: unknown parameters {unknown}; allowed {sorted(defaults)}")
    values = {}
    for name, default in defaults.items():
        node.declare_parameter(name, overrides.get(name, default))
        values[name] = node.get_parameter(name).value
    return SimpleNamespace(**values)


def node_overrides(overrides: dict | None):
    """rclpy ``parameter_overrides`` for in-process composition (no launch, no YAML)."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in (overrides or {}).items()]
