"""``VLAPolicy``: a trained bundle behind the ``ChunkPolicy`` interface.

One inference step is split into the stages the latency report names:

* ``preprocess``: resize + normalise images and tokenise, with the bundle's own processor
  (``model.preprocess``, the exact path training used);
* ``vlm``: the backbone forward up to the action-query hidden states (``model.encode_inputs``);
* ``head``: proprio projection + MLP + de-normalisation (``model.decoder``), replayed from a
  CUDA graph on CUDA and run eager on CPU.

On CUDA the stage times come from CUDA events, so measuring them adds no host sync; the
one sync per step is the copy of the chunk to the host, which the robot needs anyway.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from vla_robot.models.grounding import instruction_target
from vla_robot.policy.config import RuntimeConfig
from vla_robot.policy.cuda_graph import CudaGraphRunner
from vla_robot.policy.types import ACTION_SPACES, Observation

# the store's action-space names -> the runtime's
ACTION_SPACE_NAMES = {"joint_position": "joint", "joint": "joint", "ee_delta": "ee_delta"}
log = logging.getLogger(__name__)
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class VLAPolicy:
    def __init__(self, model, info, config: RuntimeConfig | None = None, robot: str = "") -> None:
        self.model = model
        self.info = info
        self.config = config or RuntimeConfig()
        self.chunk_size = int(info.horizon)
        self.action_dim = int(info.action_dim)
        space = dict(info.action_space or {})
        kind = space.get("type", "joint_position")
        self.action_space = ACTION_SPACE_NAMES.get(kind, kind)
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"{info.path}: action_space type {kind!r} is not supported; allowed {list(ACTION_SPACE_NAMES)}")
        self.robot = robot or space.get("robot", "")
        self.control_hz = space.get("control_rate_hz")
        self.joint_names = tuple(space.get("joint_names") or space.get("names") or ())
        self.camera_names = tuple(info.cameras)
        self.scene = dict(info.scene) if info.scene else None  # where the training data was recorded
        self.state_dim = int(info.state_dim)
        self.device = model.device
        self.decoder = model.decoder
        graph = {"auto": None, "on": True, "off": False}[self.config.cuda_graph]
        self.head = CudaGraphRunner(self.decoder, enabled=graph)
        self.instruction = ""
        self._checked_instructions: set[str] = set()  # the target regex runs once per text, not per inference
        self.pad_id = int(model.preprocessor.tokenizer.pad_token_id)
        if self.config.vlm_compile != "off":
            compile_vlm(model, self.config.vlm_compile)

    @classmethod
    def load(cls, path, config: RuntimeConfig | None = None) -> "VLAPolicy":
        from vla_robot.models.bundle import load_bundle

        config = config or RuntimeConfig()
        model, info = load_bundle(path, device=config.device, dtype=TORCH_DTYPES[config.dtype])
        return cls(model, info, config)

    def reset(self, instruction: str, episode: dict | None = None) -> None:
        self.instruction = self._checked(instruction)

    def _checked(self, instruction: str) -> str:
        """`instruction`, after a warning (once per new text) when the bundle asks a grounding question
        and this instruction names no object to ask about; it arrives by `reset` or inside an observation."""
        if not instruction or instruction in self._checked_instructions:
            return instruction
        self._checked_instructions.add(instruction)
        mode = self.info.config.grounding_question
        if mode != "off" and instruction_target(instruction) is None:
            log.warning("instruction %r names no target object (\"... on the X\"), so the bundle's grounding "
                        "question (model.grounding_question=%s) cannot be asked; the policy gets the words as "
                        "they are, a prompt it was not trained on", instruction, mode)
        return instruction

    def _prompt(self, obs: Observation) -> list[str]:
        return [self._checked(obs.instruction) if obs.instruction else self.instruction]

    def describe(self) -> dict:
        return {
            "kind": "vla",
            "path": str(self.info.path),
            "family": self.info.config.family,
            "grounding_question": self.info.config.grounding_question,
            "cameras": list(self.camera_names),
            "horizon": self.chunk_size,
            "action_dim": self.action_dim,
            "action_space": self.action_space,
            "scene": self.scene,
            "device": str(self.device),
            "cuda_graph_head": self.head.active,
            "vlm_compile": self.config.vlm_compile,
            "prompt_bucket": self.config.prompt_bucket,
        }

    # -- inference ----------------------------------------------------------------------
    def _images(self, obs: Observation) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.camera_names:
            img = np.ascontiguousarray(obs.images[name])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"camera {name!r}: expected uint8 HxWx3, got {img.dtype} {img.shape}")
            out[name] = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
        return out

    def _state(self, obs: Observation) -> torch.Tensor | None:
        if not self.state_dim:
            return None
        state = np.asarray(obs.state, dtype=np.float32)[: self.state_dim]
        if state.shape != (self.state_dim,):
            raise ValueError(f"state has {state.shape[0]} values, the bundle expects {self.state_dim}")
        return torch.from_numpy(state).unsqueeze(0).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def predict(self, images: dict[str, torch.Tensor], instructions: list[str], state: torch.Tensor | None):
        """Batched chunk (B, H, D) on the model device + stage timings: the runtime's forward."""
        cuda = self.device.type == "cuda"
        t0 = time.perf_counter()
        inputs = pad_prompt(self.model.preprocess(images, instructions), self.config.prompt_bucket, self.pad_id)
        t1 = time.perf_counter()
        if cuda:
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            ev[0].record()
        hidden = self.model.encode_inputs(inputs)
        if cuda:
            ev[1].record()
        chunk = self.head(hidden, state) if state is not None else self.head(hidden)
        if cuda:
            ev[2].record()
        chunk_host = chunk.float().cpu()
        t_end = time.perf_counter()
        timings = {"preprocess": t1 - t0, "total": t_end - t0}
        if cuda:
            timings["vlm"] = ev[0].elapsed_time(ev[1]) / 1e3
            timings["head"] = ev[1].elapsed_time(ev[2]) / 1e3
        else:
            timings["vlm"] = timings["head"] = float("nan")
        return chunk_host, timings

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        if self.info.config.target == "discrete":
            t0 = time.perf_counter()
            with torch.inference_mode():
                chunk = self.model.predict_action(self._images(obs), self._prompt(obs))
            return chunk[0].float().cpu().numpy(), {"total": time.perf_counter() - t0}
        if self.device.type != "cuda":
            return self._infer_cpu(obs)
        chunk, timings = self.predict(self._images(obs), self._prompt(obs), self._state(obs))
        return chunk[0].numpy().astype(np.float64), timings

    @torch.inference_mode()
    def _infer_cpu(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        """Same stages as ``predict``, timed with the host clock (CPU work is synchronous)."""
        t0 = time.perf_counter()
        inputs = self.model.preprocess(self._images(obs), self._prompt(obs))
        inputs = pad_prompt(inputs, self.config.prompt_bucket, self.pad_id)
        t1 = time.perf_counter()
        hidden = self.model.encode_inputs(inputs)
        t2 = time.perf_counter()
        state = self._state(obs)
        chunk = self.head(hidden, state) if state is not None else self.head(hidden)
        t3 = time.perf_counter()
        out = chunk[0].float().numpy().astype(np.float64)
        return out, {"preprocess": t1 - t0, "vlm": t2 - t1, "head": t3 - t2, "total": time.perf_counter() - t0}


PER_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


def pad_prompt(inputs: dict[str, torch.Tensor], bucket: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad every per-token input to the next multiple of ``bucket`` (masked, prefix type).

    Left, because the action queries are appended at the end of every row and read from
    the last K positions; the tokenizer pads left for the same reason.
    """
    if bucket <= 0:
        return inputs
    length = inputs["input_ids"].shape[1]
    target = -(-length // bucket) * bucket
    if target == length:
        return inputs
    extra = target - length
    out = dict(inputs)
    for key in PER_TOKEN_KEYS:
        if key in inputs:
            value = inputs[key]
            fill = pad_id if key == "input_ids" else 0
            pad = torch.full((value.shape[0], extra), fill, dtype=value.dtype, device=value.device)
            out[key] = torch.cat([pad, value], dim=1)
    return out


def compile_vlm(model, mode: str) -> None:
    """Replace the backbone's inner model (vision tower + projector + LM, no LM head) with its
    ``torch.compile``d self; the action-query hook on the input embeddings is traced along."""
    from vla_robot.models.vla import unwrap

    backbone = unwrap(model.backbone)
    if not getattr(backbone.model, "_vla_compiled", False):
        compiled = torch.compile(backbone.model, mode=mode, dynamic=False)
        compiled._vla_compiled = True
        backbone.model = compiled
