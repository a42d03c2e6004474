"""Twin-rendered scenes for the prior: "where is the X?" / "which emoji is on the left?" on the table.

The twin's third-person view is the picture the VLA will see; questions about it, for
train *and* validation emojis, stand in for the web images of emojis in context a hub VLM
has seen. Only images and text come out of here: no actions, no episodes, nothing that
could enter a robot training store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sim import emoji as emoji_catalogue
from training.prior.synth import VLSample, position_word


@dataclass(frozen=True)
class TwinScene:
    """A twin render and its cards, ordered left to right; ``image_xs`` < 0 lie left of centre."""

    image: Image.Image
    order: list[str]
    image_xs: list[float]


def render_twin_scenes(
    n_per_split: int, image_size: int, n_cards: int = 2, seed: int = 0, layout_seed: int | None = None,
    robot: str = "widowx250", camera: str = "third_person",
) -> list[TwinScene]:
    """Scenes of both emoji splits, cards ordered left to right in the image."""
    from sim import Twin, TwinConfig

    scenes = []
    for split in emoji_catalogue.SPLITS:
        twin = Twin(TwinConfig(robot=robot, task="grinning_face", n_cards=n_cards, split=split, cameras=(camera,),
                               image_size=(image_size, image_size), seed=seed, layout_seed=layout_seed))
        try:
            for i in range(n_per_split):
                info = twin.reset(seed * 1_000_003 + i + (0 if split == "train" else 500_000))
                xs = [twin.image_x(camera, [x, y, 0.0]) for x, y in info["card_xy"]]
                ranks = np.argsort(xs)
                scenes.append(TwinScene(Image.fromarray(twin.render(camera)), [info["cards"][j] for j in ranks],
                                        [xs[j] for j in ranks]))
        finally:
            close = getattr(twin, "close", None)
            if close:
                close()
    return scenes


class TwinSceneVL:
    """Questions about pre-rendered twin scenes, drawn with the given RNG."""

    def __init__(self, scenes: list[TwinScene], seed: int = 0) -> None:
        if not scenes:
            raise ValueError("no twin scenes to ask about")
        self.scenes = scenes
        self.rng = random.Random(seed)

    def sample(self) -> VLSample:
        scene = self.rng.choice(self.scenes)
        image, order = scene.image, scene.order
        n = len(order)
        k = self.rng.randrange(n)
        name = emoji_catalogue.get_emoji(order[k]).name
        if self.rng.random() < 0.6:
            return VLSample(image, f"where is the {name}?", position_word(k, n), "twin_where", tuple(order))
        where = position_word(k, n)
        return VLSample(image, f"which emoji is on the {where}?", name, "twin_which", tuple(order))
