"""`VLAModel`: a pretrained VLM + K learnable action-query tokens + an MLP action head (VLM4VLA design).

The query tokens are appended after the image and instruction tokens; their last hidden
states feed the head, which outputs a chunk of `horizon` x `action_dim` actions. The
discrete target instead appends `horizon * action_dim` action tokens (256 bins mapped
onto the last vocabulary ids, as in OpenVLA) and trains them with the LM cross-entropy.

Split for a real-time runtime:
    hidden = model.encode(images, instructions)        # the VLM forward (B, K, hidden)
    chunk  = model.decoder(hidden, state)              # head + proprio + de-normalise, CUDA-graph safe
    chunk  = model.predict_action(images, instructions, state)  # both
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vla_robot.models.config import VLAConfig
from vla_robot.models.head import ActionDecoder, ActionHead
from vla_robot.models.normalization import Normalizer
from vla_robot.models.processors import load_processor
from vla_robot.models.prompting import VLAPreprocessor

IGNORE_INDEX = -100


@dataclass
class LossTerm:
    """One loss term as a sum over its elements and their count, so that a trainer can normalise
    by the count over every process: the mean of per-process means is not the global mean when
    processes see different numbers of valid chunk steps or answer tokens."""

    weight: float
    total: torch.Tensor  # sum of the per-element losses (carries the graph)
    count: torch.Tensor  # number of elements (no graph)

    @property
    def mean(self) -> torch.Tensor:
        return self.total / self.count.clamp_min(1)


def objective(terms: dict[str, LossTerm], counts: torch.Tensor | None = None) -> torch.Tensor:
    """sum of weight * total / count; `counts` replaces the local counts (e.g. the mean count per process)."""
    counts = torch.stack([t.count.float() for t in terms.values()]) if counts is None else counts
    return sum(t.weight * t.total / c.clamp_min(1) for t, c in zip(terms.values(), counts))


def text_hidden_size(hf_config) -> int:
    text = getattr(hf_config, "text_config", None) or hf_config
    return int(text.hidden_size)


def vocab_size(backbone) -> int:
    return int(backbone.get_output_embeddings().weight.shape[0])


def unwrap(backbone):
    """The transformers model under an optional peft wrapper (LoRA layers stay injected)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


class VLAModel(nn.Module):
    def __init__(self, config: VLAConfig, backbone: nn.Module, processor, normalizer: Normalizer):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.processor = processor
        self.preprocessor = VLAPreprocessor(config.family, processor, config.cameras, config.image_size,
                                            config.crop_scale, config.grounding_question)
        hidden = text_hidden_size(unwrap(backbone).config)
        self.action_queries = nn.Parameter(torch.randn(config.num_action_queries, hidden) * 0.02)
        self.head = ActionHead(hidden, config.num_action_queries, config.horizon, config.action_dim,
                               config.state_dim, config.head_hidden, config.head_layers,
                               predict_goal=config.goal_loss_weight > 0)
        self.normalizer = normalizer
        self._pending_queries: torch.Tensor | None = None
        self._hook = None
        self._install_query_hook()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_pretrained_backbone(cls, config: VLAConfig, stats: dict, dtype: torch.dtype | None = None) -> VLAModel:
        """Load `config.backbone` (hub id or directory) with its processor and attach fresh queries + head."""
        from transformers import AutoModelForImageTextToText

        normalizer = Normalizer(stats, config.action_dim, config.state_dim, config.gripper_dims)
        backbone = AutoModelForImageTextToText.from_pretrained(
            config.backbone, dtype=dtype, trust_remote_code=config.trust_remote_code
        )
        processor = load_processor(config.family, config.backbone, config.trust_remote_code)
        return cls(config, backbone, processor, normalizer)

    def _install_query_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
        owner = weakref.ref(self)  # no model → hook → model cycle, so a dropped model frees at once

        def hook(module, args, output):
            model = owner()
            return output if model is None else model._inject_queries(module, args, output)

        self._hook = unwrap(self.backbone).get_input_embeddings().register_forward_hook(hook)

    def set_backbone(self, backbone: nn.Module) -> None:
        """Swap the backbone module (peft wrap / merge) and keep the query injection attached."""
        self.backbone = backbone
        self._install_query_hook()

    @property
    def decoder(self) -> ActionDecoder:
        """Head + proprio projection + de-normalisation as one static-shape module (shares parameters)."""
        return ActionDecoder(self.head, self.normalizer)

    # ---------------------------------------------------------------- encoding
    def _inject_queries(self, module, args, output):
        queries = self._pending_queries
        if queries is None:
            return output
        k = queries.shape[0]
        expanded = queries.to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output[:, :-k], expanded], dim=1)

    @contextlib.contextmanager
    def _queries_active(self):
        self._pending_queries = self.action_queries
        try:
            yield
        finally:
            self._pending_queries = None

    @property
    def device(self) -> torch.device:
        return self.action_queries.device

    def preprocess(self, images: dict[str, torch.Tensor], instructions: list[str]) -> dict[str, torch.Tensor]:
        """Camera uint8 images + instructions → backbone inputs (CPU tensors; safe in DataLoader workers)."""
        return self.preprocessor(images, instructions)

    def _to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtype = unwrap(self.backbone).dtype
        out = {}
        for k, v in inputs.items():
            v = v.to(self.device, non_blocking=True)
            out[k] = v.to(dtype) if v.is_floating_point() else v
        return out

    def encode_inputs(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Backbone inputs → last hidden states of the K action queries, (B, K, hidden)."""
        inputs = append_tokens(self._to_device(inputs), self._placeholder_ids(inputs["input_ids"].shape[0]), prefix=True)
        inner = unwrap(self.backbone).model
        with self._queries_active():
            hidden = inner(**inputs, use_cache=False).last_hidden_state
        return hidden[:, -self.config.num_action_queries:]

    def encode(self, images: dict[str, torch.Tensor], instructions: list[str]) -> torch.Tensor:
        """The VLM forward: camera images (uint8 (B,3,H,W) per camera) + instructions → (B, K, hidden)."""
        return self.encode_inputs(self.preprocess(images, instructions))

    def _placeholder_ids(self, batch: int) -> torch.Tensor:
        pad = self.preprocessor.tokenizer.pad_token_id
        return torch.full((batch, self.config.num_action_queries), pad, dtype=torch.long, device=self.device)

    # ---------------------------------------------------------------- actions
    def action_head(self, query_hidden: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Query states + raw state → normalised chunk (arm in [-1, 1], gripper logits)."""
        state_norm = self.normalizer.normalise_state(state) if (state is not None and self.config.state_dim) else None
        return self.head(query_hidden, state_norm)

    @torch.no_grad()
    def predict_action(self, images: dict[str, torch.Tensor], instructions: list[str],
                       state: torch.Tensor | None = None) -> torch.Tensor:
        """Physical action chunk (B, horizon, action_dim), de-normalised, float32."""
        if self.config.target == "discrete":
            return self._predict_discrete(self.preprocess(images, instructions))
        if state is not None:
            state = state.to(self.device)
        return self.decoder(self.encode(images, instructions), state)

    # ---------------------------------------------------------------- losses
    def forward(self, batch: dict) -> dict:
        """Training entry point (what DDP/FSDP wrap): a VQA batch (has "labels") gets the LM loss,
        a robot batch the action loss. Returns {"loss": the local objective, one entry per term,
        "terms": {name: LossTerm}}."""
        if "labels" in batch:
            terms = {"vqa_loss": self.lm_loss_term(batch["inputs"], batch["labels"])}
        else:
            terms = self.loss_terms(batch)
        return {"loss": objective(terms), **{k: t.mean for k, t in terms.items()}, "terms": terms}

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Robot batch → {"loss", one entry per term}. Padded chunk steps (past the episode end) are masked out."""
        terms = self.loss_terms(batch)
        return {"loss": objective(terms), **{k: t.mean for k, t in terms.items()}}

    def _targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised action targets (B, H, D) and their element weights (1 = counts in the loss).

        A batch may carry `action_target` already normalised with its own dataset's statistics and
        padded to this model's action layout, with `action_dim_mask` (B, D) marking the dims that
        exist for that sample's robot (cross-embodiment stage 1, training/embodiment.py).
        """
        valid = ~batch["action_is_pad"].to(self.device)
        if "action_target" in batch:
            target = batch["action_target"].to(self.device).float()
            dims = batch["action_dim_mask"].to(self.device)
            return target, (valid.unsqueeze(-1) & dims.unsqueeze(1)).float()
        target = self.normalizer.normalise_action(batch["action"].to(self.device))
        return target, valid.unsqueeze(-1).expand_as(target).float()

    def _state_norm(self, batch: dict, key: str = "state") -> torch.Tensor | None:
        if f"{key}_norm" in batch:
            return batch[f"{key}_norm"].to(self.device).float()
        state = batch.get(key)
        if state is None or not self.config.state_dim:
            return None
        return self.normalizer.normalise_state(state.to(self.device))

    def loss_terms(self, batch: dict) -> dict[str, LossTerm]:
        target, weight = self._targets(batch)
        cfg = self.config
        if cfg.target == "discrete":
            unit = torch.where(self.normalizer.is_gripper, target * 2.0 - 1.0, target)
            ids = self.unit_to_token_ids(unit)
            labels = ids.masked_fill(weight.flatten(1) == 0, IGNORE_INDEX)
            return {"token_loss": self.lm_loss_term(batch["inputs"], labels)}
        query_hidden = self.encode_inputs(batch["inputs"])
        pred = self.head(query_hidden, self._state_norm(batch))
        terms = {}
        if cfg.arm_dims:
            arm = list(cfg.arm_dims)
            huber = F.huber_loss(pred[..., arm].float(), target[..., arm], reduction="none", delta=cfg.huber_delta)
            terms["arm_loss"] = LossTerm(1.0, (huber * weight[..., arm]).sum(), weight[..., arm].sum())
        if cfg.gripper_dims:
            grip = list(cfg.gripper_dims)
            bce = F.binary_cross_entropy_with_logits(pred[..., grip].float(), target[..., grip], reduction="none")
            terms["gripper_loss"] = LossTerm(cfg.gripper_loss_weight, (bce * weight[..., grip]).sum(),
                                             weight[..., grip].sum())
        if self.head.goal is not None:
            goal = self._state_norm(batch, "goal_state")
            if goal is None:
                raise ValueError("model.goal_loss_weight > 0 but the batch has no goal_state "
                                 "(RobotCollator adds it when the model uses proprioception)")
            dims = batch.get("state_dim_mask")
            mask = (torch.ones_like(goal) if dims is None else dims.to(self.device).float().expand_as(goal))
            huber = F.huber_loss(self.head.goal(query_hidden), goal, reduction="none", delta=cfg.huber_delta)
            terms["goal_loss"] = LossTerm(cfg.goal_loss_weight, (huber * mask).sum(), mask.sum())
        return terms

    def lm_loss_term(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> LossTerm:
        """Next-token cross-entropy on `labels` (B, T) appended after the prompt (IGNORE_INDEX = skip).

        Used by the discrete action target and by VQA co-training (answers as labels).
        """
        inputs = self._to_device(inputs)
        labels = labels.to(self.device)
        pad = self.preprocessor.tokenizer.pad_token_id
        ids = labels.masked_fill(labels == IGNORE_INDEX, pad)
        full = append_tokens(inputs, ids, prefix=False, mask=labels != IGNORE_INDEX)
        t = labels.shape[1]
        # only the positions that predict the labels: a 257k vocabulary over the whole prompt would not fit
        logits = self.backbone(**full, use_cache=False, logits_to_keep=t + 1).logits
        pred = logits[:, -t - 1:-1].float()
        total = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                                reduction="sum")
        return LossTerm(1.0, total, (labels != IGNORE_INDEX).sum())

    def lm_loss(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """The mean next-token cross-entropy of `lm_loss_term`."""
        return self.lm_loss_term(inputs, labels).mean

    # ---------------------------------------------------------------- discrete target
    def action_token_offset(self) -> int:
        return vocab_size(unwrap(self.backbone)) - self.config.num_bins

    def action_to_token_ids(self, action: torch.Tensor) -> torch.Tensor:
        """Physical (B, H, D) → vocabulary ids (B, H*D): uniform bins over the normalised range."""
        return self.unit_to_token_ids(self.normalizer.to_unit_range(action))

    def unit_to_token_ids(self, unit: torch.Tensor) -> torch.Tensor:
        """[-1, 1] actions (B, H, D) → vocabulary ids (B, H*D)."""
        bins = ((unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.config.num_bins - 1)).round().long()
        return (bins + self.action_token_offset()).flatten(1)

    def token_ids_to_action(self, ids: torch.Tensor) -> torch.Tensor:
        bins = (ids - self.action_token_offset()).clamp(0, self.config.num_bins - 1).float()
        unit = bins / (self.config.num_bins - 1) * 2.0 - 1.0
        return self.normalizer.from_unit_range(unit.view(-1, self.config.horizon, self.config.action_dim))

    def _predict_discrete(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Greedy decoding restricted to the action tokens (recomputes the prefix; a baseline, not fast)."""
        inputs = self._to_device(inputs)
        offset = self.action_token_offset()
        batch = inputs["input_ids"].shape[0]
        ids = torch.empty((batch, 0), dtype=torch.long, device=self.device)
        for _ in range(self.config.horizon * self.config.action_dim):
            full = append_tokens(inputs, ids, prefix=False)
            logits = self.backbone(**full, use_cache=False, logits_to_keep=1).logits[:, -1, offset:offset + self.config.num_bins]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True) + offset], dim=1)
        return self.token_ids_to_action(ids)

    # ---------------------------------------------------------------- bookkeeping
    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        params = {id(p): p for p in self.parameters()}.values()
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything that is not the backbone: queries, head, normaliser buffers."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}


def append_tokens(inputs: dict[str, torch.Tensor], ids: torch.Tensor, prefix: bool,
                  mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Append token ids to left-padded backbone inputs, extending every per-token side input.

    `prefix=True` marks them as part of PaliGemma's bidirectional prefix (action queries);
    `prefix=False` as causal suffix (answers, discrete actions).
    """
    out = dict(inputs)
    if mask is None:
        mask = torch.ones_like(ids, dtype=torch.bool)
    out["input_ids"] = torch.cat([inputs["input_ids"], ids], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], mask.to(inputs["attention_mask"].dtype)], dim=1)
    if "token_type_ids" in inputs:
        fill = 0 if prefix else 1
        out["token_type_ids"] = torch.cat([inputs["token_type_ids"], torch.full_like(ids, fill)], dim=1)
    if "mm_token_type_ids" in inputs:
        tt = inputs["mm_token_type_ids"]
        out["mm_token_type_ids"] = torch.cat([tt, torch.zeros_like(ids, dtype=tt.dtype)], dim=1)
    return out


def image_token_id(backbone) -> int | None:
    config = unwrap(backbone).config
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def prompt_report(model: VLAModel, instruction: str = "put the cube on the grinning face") -> dict:
    """How many tokens one robot observation costs: image tokens per camera and the prompt length.

    Measured by running the model's own preprocessing on a blank frame of the bundle's image
    size, so processor settings that multiply tokens (SmolVLM's image splitting: a 384 px frame
    → 17 tiles x 81 = 1377 tokens) show up as they will in training and deployment.
    """
    cfg = model.config
    frame = torch.zeros(1, 3, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    inputs = model.preprocess({c: frame for c in cfg.cameras}, [instruction])
    ids = inputs["input_ids"][0]
    token = image_token_id(model.backbone)
    image_tokens = int((ids == token).sum()) if token is not None else -1
    per_camera = image_tokens // len(cfg.cameras) if image_tokens >= 0 else -1
    return {"image_tokens_per_camera": per_camera, "cameras": len(cfg.cameras), "prompt_tokens": int(ids.numel()),
            "sequence_tokens": int(ids.numel()) + (cfg.num_action_queries if cfg.target == "continuous" else
                                                   cfg.horizon * cfg.action_dim)}
