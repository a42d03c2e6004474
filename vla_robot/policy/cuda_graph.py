"""Run a static-shape ``nn.Module`` through a CUDA graph, with an eager path everywhere else.

Why: the action head (proprio projection + MLP + de-normalisation) is a dozen small
kernels; at batch 1 their launch overhead, not their maths, sets the latency and its
jitter. One graph replay launches them all at once. The recipe is PyTorch's own:
static input/output buffers, warm-up on a side stream, capture, then copy-in + replay
per call, and the output cloned so a caller can never see it overwritten by the next
replay. A new shape/dtype key is captured on first use (a different prompt bucket or
batch size), never silently replayed with the wrong buffers.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

ShapeKey = tuple[tuple[tuple[int, ...], torch.dtype, str], ...]


def shape_key(tensors: tuple[torch.Tensor, ...]) -> ShapeKey:
    return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in tensors)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]
    single: bool


class CudaGraphRunner:
    """Callable wrapper: ``runner(*tensors)`` equals ``module(*tensors)``.

    ``enabled=None`` means "on when the module lives on CUDA". Only tensor positional
    arguments are supported, and the module must be free of host synchronisation
    (no ``.item()``, no data-dependent shapes); ``tests/test_policy_gpu.py`` checks this.
    """

    def __init__(self, module: nn.Module, enabled: bool | None = None, warmup_iters: int = 3, max_graphs: int = 4):
        self.module = module
        self.warmup_iters = warmup_iters
        self.max_graphs = max_graphs
        self.enabled = enabled
        self.captures = 0
        self.replays = 0
        self._graphs: OrderedDict[ShapeKey, _Captured] = OrderedDict()
        self._pool = None

    def _module_device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def active(self) -> bool:
        on_cuda = self._module_device().type == "cuda"
        if self.enabled is None:
            return on_cuda
        if self.enabled and not on_cuda:
            raise RuntimeError("cuda_graph='on' needs the module on a CUDA device; use 'auto' or 'off' on CPU")
        return self.enabled

    def invalidate(self) -> None:
        """Drop every graph (after weights are replaced rather than updated in place)."""
        self._graphs.clear()

    @torch.no_grad()
    def __call__(self, *tensors: torch.Tensor):
        if not self.active:
            return self.module(*tensors)
        key = shape_key(tensors)
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._capture(tensors)
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        for static, value in zip(captured.inputs, tensors):
            static.copy_(value, non_blocking=True)
        captured.graph.replay()
        self.replays += 1
        outs = tuple(o.clone() for o in captured.outputs)
        return outs[0] if captured.single else outs

    def _capture(self, tensors: tuple[torch.Tensor, ...]) -> _Captured:
        device = self._module_device()
        static_inputs = tuple(t.detach().to(device).clone() for t in tensors)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_iters):
                self.module(*static_inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool):
            out = self.module(*static_inputs)
        single = isinstance(out, torch.Tensor)
        outputs = (out,) if single else tuple(out)
        self.captures += 1
        return _Captured(graph, static_inputs, outputs, single)
