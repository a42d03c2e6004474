"""Which twin scene `vla-robot eval` and `vla-robot deploy --robot sim` build: the bundle's by default.

A policy is only as good as the scene it was trained for. The demo's bundle learned a
2-card table with a fixed layout at 64x64 pixels; dropped into the twin's defaults (4
cards, random layouts, 224x224) it failed 4 of 4 episodes. The bundle now carries the
scene its training stores were recorded in (``bundle.json["scene"]``), and the twin
commands start from it. A flag given on the command line always wins, and the choice is
printed, with where each value came from, so nobody evaluates on a scene by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

RANDOM_LAYOUT = -1  # --layout-seed -1: a new card/cube layout every episode

FALLBACK = {"n_cards": 4, "layout_seed": None, "image_size": (224, 224)}  # the twin's own defaults


@dataclass(frozen=True)
class SceneChoice:
    n_cards: int
    layout_seed: int | None  # None: a random layout per episode
    image_size: tuple[int, int]  # (width, height)
    sources: dict  # field -> "flag" | "bundle" | "default"

    def twin_overrides(self) -> dict:
        return {} if self.layout_seed is None else {"layout_seed": self.layout_seed}

    def describe(self) -> str:
        layout = "random layouts" if self.layout_seed is None else f"layout seed {self.layout_seed}"
        w, h = self.image_size
        parts = [f"{self.n_cards} cards ({self.sources['n_cards']})", f"{layout} ({self.sources['layout_seed']})",
                 f"{w}x{h} images ({self.sources['image_size']})"]
        return ("twin scene: " + ", ".join(parts)
                + "; override with --cards N, --layout-seed S (-1: random), --image-size W H")


def choose_scene(policy, cards: int | None, layout_seed: int | None,
                 image_size: tuple[int, int] | None) -> SceneChoice:
    """Command-line values (None = not given) over the bundle's scene over the twin's defaults."""
    scene = getattr(policy, "scene", None) or {}
    values, sources = {}, {}
    given = {"n_cards": cards, "layout_seed": layout_seed,
             "image_size": None if image_size is None else tuple(int(v) for v in image_size)}
    for key, flag in given.items():
        if flag is not None:
            values[key], sources[key] = flag, "flag"
        elif key in scene:
            values[key], sources[key] = scene[key], "bundle"
        else:
            values[key], sources[key] = FALLBACK[key], "default"
    layout = values["layout_seed"]
    layout = None if layout is None or int(layout) == RANDOM_LAYOUT else int(layout)
    if int(values["n_cards"]) < 1:
        raise SystemExit(f"--cards {values['n_cards']}: at least one card")
    return SceneChoice(int(values["n_cards"]), layout, tuple(int(v) for v in values["image_size"]), sources)
