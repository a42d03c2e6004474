"""Helpers shared by the typed config dataclasses (policy, model, twin, training).

Why here: every config is built from plain dicts (YAML, JSON, CLI) and must reject a key it
does not know, naming it and the allowed ones; ``training`` may import this, ``vla_robot``
never imports ``training``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields


def unknown_fields(cls, data: Mapping) -> tuple[list, list[str]]:
    """The keys of ``data`` that are not fields of dataclass ``cls``, and the allowed field names (both sorted).

    Each caller words its own error, so messages stay specific to the config being read.
    """
    known = {f.name for f in fields(cls)}
    return sorted(set(data) - known), sorted(known)
