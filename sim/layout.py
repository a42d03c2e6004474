"""Where cards and the cube go: a jittered grid of slots over the arm's reachable table area.

Slots make every layout valid by construction (no rejection loop, no overlap, always
reachable), and make "impossible layout" a question answered at config load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.arms import arm_model

ACROSS_SQUEEZE = 0.9  # the near row is wide in the image; keep its outer cards in view
GRID_SHIFT = 0.012  # m: the whole grid moves by up to this per episode, so positions are continuous
GRID_YAW = float(np.arctan2(1.0, 2.0))  # heading of the Bridge camera's view over the table


@dataclass(frozen=True)
class Layout:
    card_xy: np.ndarray  # (n_cards, 2)
    card_yaw: np.ndarray  # (n_cards,)
    cube_xy: np.ndarray  # (2,)
    cube_yaw: float


def slots(robot: str) -> np.ndarray:
    """Slot centres: a grid centred where the third-person camera looks, turned to face it,
    so every card is in view (cards in rows across the image, as on a real table)."""
    arm = arm_model(robot)
    n_depth, n_across = arm.grid_shape
    depth = (np.arange(n_depth) - (n_depth - 1) / 2) * arm.slot_pitch
    across = (np.arange(n_across) - (n_across - 1) / 2) * arm.slot_pitch * ACROSS_SQUEEZE
    forward = np.array([np.cos(GRID_YAW), np.sin(GRID_YAW)])
    left = np.array([-forward[1], forward[0]])
    centre = np.asarray(arm.grid_center)
    return np.array([centre + a * forward + b * left for a in depth for b in across])


def max_cards(robot: str) -> int:
    return len(slots(robot)) - 1


def sample_layout(robot: str, n_cards: int, rng: np.random.Generator, cube_xy: np.ndarray | None = None) -> Layout:
    """Cards on distinct slots; the cube on another slot unless ``cube_xy`` is given."""
    arm = arm_model(robot)
    grid = slots(robot)
    if n_cards + 1 > len(grid):
        raise ValueError(f"{n_cards} cards do not fit on the {robot} table (max {len(grid) - 1})")
    order = rng.permutation(len(grid))
    # a card's half diagonal must stay inside its slot, so the jitter is what the pitch leaves
    slack = max(0.0, (arm.slot_pitch * ACROSS_SQUEEZE - arm.card_size * 1.1) / 2)
    jitter = rng.uniform(-slack, slack, size=(n_cards + 1, 2)) + rng.uniform(-GRID_SHIFT, GRID_SHIFT, size=2)
    card_xy = grid[order[:n_cards]] + jitter[:n_cards]
    card_yaw = rng.uniform(-0.15, 0.15, size=n_cards)
    if cube_xy is None:
        cube_xy = grid[order[n_cards]] + 0.5 * jitter[n_cards]
    return Layout(card_xy=card_xy, card_yaw=card_yaw, cube_xy=np.asarray(cube_xy, float), cube_yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)))
