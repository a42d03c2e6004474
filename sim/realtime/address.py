"""``twin://`` addresses: which arm, which named twin instance, which episodes.

    twin                                   the WidowX 250, twin name "default"
    twin?name=lab1                         the WidowX 250, twin name lab1
    twin://widowx250?name=lab1&seed=3      WidowX 250, name lab1, first episode seed 3
    twin://so100?name=ci42&task=reach      SO-100 on the reach task

The same address is given to the arm node (``port``), to each twin camera (``device``) and
to the scripted teleop (``twin``): the name picks the shared state block
(``/dev/shm/vla-twin-<name>``), so several twins run side by side without colliding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from vla_robot.robots.factory import is_twin_port as is_twin_url

ARMS = {"widowx250": "widowx250", "widowx": "widowx250", "so100": "so100"}
DRIVER_KIND = {"widowx250": "widowx", "so100": "so100"}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OPTIONS = {"name": str, "seed": int, "task": str, "rate": float, "split": str, "n_cards": int, "layout_seed": int}




@dataclass(frozen=True)
class TwinAddress:
    arm: str = "widowx250"  # twin arm model: widowx250 | so100
    name: str = "default"
    seed: int = 0
    task: str = "grinning_face"
    rate: float = 1.0  # sim seconds per wall second
    split: str = "train"
    n_cards: int = 4
    layout_seed: int | None = None

    @property
    def driver_kind(self) -> str:
        """The hardware driver this arm's twin is driven by (``make_robot`` kind)."""
        return DRIVER_KIND[self.arm]

    @property
    def url(self) -> str:
        query = f"name={self.name}&seed={self.seed}&task={self.task}&rate={self.rate:g}"
        return f"twin://{self.arm}?{query}"


def parse_twin_url(text: str, default_arm: str | None = None) -> TwinAddress:
    """Parse ``twin[://ARM][?key=value&...]``; a bare name (no ``twin``) is taken as ``name``."""
    if not is_twin_url(text):
        if NAME.match(text or ""):
            return TwinAddress(arm=ARMS.get(default_arm or "widowx250", "widowx250"), name=text)
        raise ValueError(f"not a twin address: {text!r}; use twin, twin://widowx250?name=NAME or twin://so100?name=NAME")
    parts = urlsplit(text if "://" in text else "twin://" + text[len("twin"):])
    arm = parts.netloc or default_arm or "widowx250"
    if arm not in ARMS:
        raise ValueError(f"twin address {text!r}: unknown arm {arm!r}; choose one of {sorted(set(ARMS.values()))}")
    values = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise ValueError(f"twin address {text!r}: unknown option {key!r}; options: {sorted(OPTIONS)}")
        try:
            values[key] = OPTIONS[key](value)
        except ValueError:
            raise ValueError(f"twin address {text!r}: {key}={value!r} is not a {OPTIONS[key].__name__}") from None
    if "name" in values and not NAME.match(values["name"]):
        raise ValueError(f"twin address {text!r}: name {values['name']!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    return TwinAddress(arm=ARMS[arm], **values)
