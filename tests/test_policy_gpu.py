"""CUDA-graph action head: graph == eager on fresh inputs, re-capture on a shape change, no host sync
in the replayed region. GPU tests skip without CUDA; the CPU twin test at the end always runs.

Imports only torch and the runtime/model modules (no sim, no ROS) so the file runs on a bare GPU box.
"""

import pytest
import torch

from vla_robot.models.head import ActionDecoder, ActionHead
from vla_robot.models.normalization import Normalizer
from vla_robot.policy.cuda_graph import CudaGraphRunner

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def make_decoder(hidden=64, queries=8, horizon=10, action_dim=7, state_dim=7, seed=0) -> ActionDecoder:
    g = torch.Generator().manual_seed(seed)
    stats = {
        "action": {"q01": (-torch.rand(action_dim, generator=g)).tolist(), "q99": torch.rand(action_dim, generator=g).add(0.1).tolist(),
                   "min": [-1.0] * action_dim, "max": [1.0] * action_dim},
        "state": {"mean": torch.randn(state_dim, generator=g).tolist(), "std": torch.rand(state_dim, generator=g).add(0.5).tolist()},
    }
    torch.manual_seed(seed)
    head = ActionHead(hidden, queries, horizon, action_dim, state_dim, head_hidden=128, head_layers=3)
    return ActionDecoder(head, Normalizer(stats, action_dim, state_dim, gripper_dims=(action_dim - 1,))).eval()


def inputs(batch, device, hidden=64, queries=8, state_dim=7, dtype=torch.float32):
    return (torch.randn(batch, queries, hidden, device=device, dtype=dtype),
            torch.randn(batch, state_dim, device=device))


@pytest.mark.gpu
@cuda
def test_graph_equals_eager_on_fresh_random_inputs():
    dec = make_decoder().cuda()
    runner = CudaGraphRunner(dec)
    assert runner.active
    previous = None
    for _ in range(8):
        h, s = inputs(2, "cuda")
        out = runner(h, s)
        with torch.no_grad():
            ref = dec(h, s)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        if previous is not None:
            kept, kept_ref = previous
            torch.testing.assert_close(kept, kept_ref, rtol=0, atol=0)  # the clone is not overwritten by replays
        previous = (out, ref.clone())
    assert runner.captures == 1 and runner.replays == 8


@pytest.mark.gpu
@cuda
def test_recapture_on_shape_or_dtype_change():
    dec = make_decoder().cuda()
    runner = CudaGraphRunner(dec)
    for batch, expected in ((1, 1), (4, 2), (1, 2), (4, 2)):
        h, s = inputs(batch, "cuda")
        torch.testing.assert_close(runner(h, s), dec(h, s).detach(), rtol=1e-5, atol=1e-5)
        assert runner.captures == expected
    h, s = inputs(1, "cuda", dtype=torch.bfloat16)  # a bf16 backbone feeds bf16 query states: a new key
    torch.testing.assert_close(runner(h, s), dec(h, s).detach(), rtol=1e-5, atol=1e-5)
    assert runner.captures == 3


@pytest.mark.gpu
@cuda
def test_no_host_sync_inside_the_replayed_region():
    dec = make_decoder().cuda()
    runner = CudaGraphRunner(dec)
    runner(*inputs(1, "cuda"))  # capture outside the check
    fresh = [inputs(1, "cuda") for _ in range(5)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        outs = [runner(h, s) for h, s in fresh]  # copy-in + replay + clone: any host sync raises here
    finally:
        torch.cuda.set_sync_debug_mode(0)
    for (h, s), out in zip(fresh, outs):
        torch.testing.assert_close(out, dec(h, s).detach(), rtol=1e-5, atol=1e-5)

    class Syncing(torch.nn.Module):  # the negative control: a head that reads a value on the host
        def forward(self, x):
            return x * float(x.abs().max().item())

    with pytest.raises(RuntimeError):
        torch.cuda.set_sync_debug_mode("error")
        try:
            Syncing().cuda()(torch.randn(3, device="cuda"))
        finally:
            torch.cuda.set_sync_debug_mode(0)


@pytest.mark.gpu
@cuda
def test_vla_policy_on_cuda_graph_head_matches_eager(tmp_path):
    """The whole runtime step on CUDA (tiny real PaliGemma, bf16 backbone): graph head == eager head."""
    import numpy as np

    from vla_robot.models.config import VLAConfig
    from vla_robot.models.tiny import make_tiny_backbone
    from vla_robot.models.vla import VLAModel
    from vla_robot.models.bundle import BundleInfo
    from vla_robot.policy.config import RuntimeConfig
    from vla_robot.policy.types import Observation
    from vla_robot.policy.vla_policy import VLAPolicy

    backbone = make_tiny_backbone("paligemma", tmp_path / "bb", image_size=32, hidden_size=32)
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=6, state_dim=7,
                    cameras=("third_person",), image_size=32, gripper_dims=(6,), head_hidden=32)
    stats = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [0.0] * 7, "max": [1.0] * 7},
             "state": {"mean": [0.0] * 7, "std": [1.0] * 7}}
    model = VLAModel.from_pretrained_backbone(cfg, stats, dtype=torch.bfloat16).cuda().eval()
    info = BundleInfo(path=tmp_path, config=cfg, cameras=cfg.cameras, image_size=32, state_dim=7, action_dim=7,
                      horizon=6, action_space={"type": "joint_position"}, weights="merged", stats=stats)
    graph = VLAPolicy(model, info, RuntimeConfig(device="cuda", dtype="bfloat16", cuda_graph="on"))
    eager = VLAPolicy(model, info, RuntimeConfig(device="cuda", dtype="bfloat16", cuda_graph="off"))
    assert graph.head.active and not eager.head.active
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = Observation({"third_person": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)}, rng.normal(size=7),
                          "put the cube on the cat")
        a, timings = graph.infer(obs)
        b, _ = eager.infer(obs)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        assert timings["vlm"] > 0 and timings["head"] > 0 and timings["total"] >= timings["vlm"]
    assert graph.head.captures == 1 and graph.head.replays == 3


@pytest.mark.gpu
@cuda
def test_compiled_vlm_with_prompt_bucket_matches_eager_and_does_not_recompile(tmp_path):
    """torch.compile(reduce-overhead) of the VLM forward, prompts padded to a 32-token bucket: the chunk
    equals the eager runtime's with the same bucket (bf16 tolerance), and a second instruction of the
    same bucket reuses the compiled graph."""
    import numpy as np

    from vla_robot.models.bundle import BundleInfo
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.tiny import make_tiny_backbone
    from vla_robot.models.vla import VLAModel
    from vla_robot.policy.config import RuntimeConfig
    from vla_robot.policy.types import Observation
    from vla_robot.policy.vla_policy import VLAPolicy

    backbone = make_tiny_backbone("paligemma", tmp_path / "bb", image_size=32, hidden_size=32)
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=6, state_dim=7,
                    cameras=("third_person",), image_size=32, gripper_dims=(6,), head_hidden=32)
    stats = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [0.0] * 7, "max": [1.0] * 7},
             "state": {"mean": [0.0] * 7, "std": [1.0] * 7}}
    info = BundleInfo(path=tmp_path, config=cfg, cameras=cfg.cameras, image_size=32, state_dim=7, action_dim=7,
                      horizon=6, action_space={"type": "joint_position"}, weights="merged", stats=stats)
    torch.manual_seed(0)
    eager_model = VLAModel.from_pretrained_backbone(cfg, stats, dtype=torch.bfloat16).cuda().eval()
    torch.manual_seed(0)
    compiled_model = VLAModel.from_pretrained_backbone(cfg, stats, dtype=torch.bfloat16).cuda().eval()
    compiled_model.load_state_dict(eager_model.state_dict())
    rt = dict(device="cuda", dtype="bfloat16", prompt_bucket=32)
    eager = VLAPolicy(eager_model, info, RuntimeConfig(**rt))
    compiled = VLAPolicy(compiled_model, info, RuntimeConfig(vlm_compile="reduce-overhead", **rt))
    rng = np.random.default_rng(0)
    from torch._dynamo.utils import counters

    graphs = []
    for text in ("put the cube on the cat", "place the block onto the smiling face card", "put the cube on the cat"):
        obs = Observation({"third_person": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)}, rng.normal(size=7), text)
        for _ in range(3):  # reduce-overhead records its CUDA graph after warm-up calls
            got, _ = compiled.infer(obs)
        want, _ = eager.infer(obs)
        np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] >= 1 and graphs[-1] == graphs[0]  # one bucket, one graph: no recompilation


def test_cpu_twin_runner_is_eager_and_exact():
    """The same runner on the CPU: graph path off automatically, output identical to the module."""
    dec = make_decoder()
    runner = CudaGraphRunner(dec)
    assert not runner.active
    for batch in (1, 3):
        h, s = inputs(batch, "cpu")
        torch.testing.assert_close(runner(h, s), dec(h, s).detach(), rtol=0, atol=0)
    assert runner.captures == 0
