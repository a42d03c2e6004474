"""A classification signal straight into the vision tower: the stand-in for its own pretraining.

A hub VLM's vision tower arrives pretrained (SigLIP, CLIP); the tiny one here starts
random. Trained with the language-model loss alone, the random tiny LM learns the answer
formats and the name frequencies long before the images help, and then ignores them:
measured on a 2,000-step 64-px prior, the vision tower's gradient was ~1 % of the LM's and
shuffling the images across the batch left the loss unchanged (probe at chance). The same
tower with a linear emoji classifier on its mean-pooled output reaches ~80 % accuracy over
the 60-emoji catalogue in 600 steps. So the prior first trains the tower on that task
(``vision_warmup_steps``) and keeps it as an auxiliary loss (``vision_aux_weight``) while the
LM learns to read it. The classifier head is thrown away: it is not part of the VLM.
"""

from __future__ import annotations

import torch

from training.prior.synth import SyntheticVL


class EmojiClassifierAux:
    """Linear emoji classifier on the mean-pooled vision-tower output, fed single-card images."""

    def __init__(self, model, processor, emoji_ids: tuple[str, ...], image_size: int, seed: int, batch_size: int):
        self.model = model
        self.processor = processor
        self.index = {e: i for i, e in enumerate(emoji_ids)}
        self.stream = SyntheticVL(emoji_ids, image_size, seed=seed + 7, weights={"identify": 1.0})
        self.batch_size = batch_size
        width = model.config.vision_config.hidden_size
        self.head = torch.nn.Linear(width, len(emoji_ids))

    def parameters(self):
        return list(self.head.parameters())

    def loss_and_accuracy(self) -> tuple[torch.Tensor, float]:
        samples = self.stream.batch(self.batch_size)
        pixels = self.processor.image_processor([s.image for s in samples], return_tensors="pt")["pixel_values"]
        labels = torch.tensor([self.index[s.emoji_ids[0]] for s in samples])
        features = self.model.model.vision_tower(pixel_values=pixels).last_hidden_state.mean(1)
        logits = self.head(features)
        accuracy = float((logits.argmax(-1) == labels).float().mean())
        return torch.nn.functional.cross_entropy(logits, labels), accuracy
