"""The three twin tasks: what an episode asks for, and how its outcome is judged.

``grinning_face`` is the paper's task (cube onto the instructed emoji card). ``reach`` and
``push`` are simpler motor tasks on the same table, used to pre-train on robot data that
contains no emoji knowledge. Every task reports the same three metrics so one evaluation
loop serves all of them: *executed* (the motion was completed on some target),
*recognised* (it was the instructed one) and *success* (both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim import emoji as emoji_catalogue

REACH_TEMPLATES = (
    "move the gripper above the {name} card",
    "reach for the {name} card",
    "hover over the {name} card",
    "point the gripper at the {name} card",
)
PUSH_TEMPLATES = (
    "push the cube to the {name}",
    "slide the block to the {name}",
    "nudge the cube towards the {name}",
    "push the block {name}",
)
PUSH_DIRECTIONS = {"left": np.array([0.0, 1.0]), "right": np.array([0.0, -1.0])}


@dataclass
class Episode:
    """What one reset drew: the instruction and everything needed to judge it."""

    task: str
    instruction: str
    target: str  # emoji id, colour name or push direction
    target_index: int  # card index (grinning_face, reach) or -1
    card_labels: tuple[str, ...]
    template_index: int
    cube_start: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def target_name(self) -> str:
        if self.task == "grinning_face":
            return emoji_catalogue.get_emoji(self.target).name
        return self.target


def draw_episode(task: str, pool: tuple[str, ...], n_cards: int, rng: np.random.Generator) -> Episode:
    if task == "push":
        target = str(rng.choice(sorted(PUSH_DIRECTIONS)))
        labels = tuple(str(x) for x in rng.choice(pool, size=n_cards, replace=len(pool) < n_cards))
        t = int(rng.integers(len(PUSH_TEMPLATES)))
        return Episode(task, PUSH_TEMPLATES[t].format(name=target), target, -1, labels, t)
    labels = tuple(str(x) for x in rng.choice(pool, size=n_cards, replace=False))
    k = int(rng.integers(n_cards))
    if task == "reach":
        t = int(rng.integers(len(REACH_TEMPLATES)))
        return Episode(task, REACH_TEMPLATES[t].format(name=labels[k]), labels[k], k, labels, t)
    t = int(rng.integers(len(emoji_catalogue.TEMPLATES)))
    name = emoji_catalogue.get_emoji(labels[k]).name
    return Episode(task, emoji_catalogue.instruction(name, t), labels[k], k, labels, t)


def card_under(xy: np.ndarray, card_xy: np.ndarray, card_yaw: np.ndarray, half: float) -> int | None:
    """Index of the card whose square contains point ``xy`` (None between cards)."""
    for i, (c, yaw) in enumerate(zip(card_xy, card_yaw)):
        d = xy - c
        cs, sn = np.cos(-yaw), np.sin(-yaw)
        local = np.array([cs * d[0] - sn * d[1], sn * d[0] + cs * d[1]])
        if np.all(np.abs(local) <= half):
            return i
    return None
