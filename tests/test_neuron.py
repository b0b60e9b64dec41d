"""LIF neuron: both backends against an independent per-step reference written here."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import golden.neuron as neuron
from golden.neuron import BACKENDS, LIFNode, lif_step, set_backend

# ---------------------------------------------------------------------------
# Independent reference: SpikingJelly's equations, one step at a time, plain autograd.


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.kind, ctx.alpha = kind, alpha
        return (u >= 0).float()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        if ctx.kind == "sigmoid":
            s = 1.0 / (1.0 + torch.exp(-a * u))
            d = a * s * (1.0 - s)
        else:
            d = a / 2.0 / (1.0 + (math.pi / 2.0 * a * u) ** 2)
        return grad * d, None, None


def reference_lif(
    x: torch.Tensor,
    *,
    tau: float = 2.0,
    v_th: float = 1.0,
    kind: str = "sigmoid",
    alpha: float | None = None,
    w: torch.Tensor | None = None,
    detach_reset: bool = True,
    liaf: bool = False,
) -> torch.Tensor:
    alpha = alpha if alpha is not None else {"sigmoid": 4.0, "atan": 2.0}[kind]
    v = torch.zeros_like(x[0])
    outs = []
    for t in range(x.shape[0]):
        if w is None:
            h = v + (x[t] - v) / tau
        else:
            h = v + (x[t] - v) * torch.sigmoid(w)
        s = _Heaviside.apply(h - v_th, kind, alpha)
        outs.append(torch.relu(h) if liaf else s)
        v = h * (1.0 - (s.detach() if detach_reset else s))
    return torch.stack(outs)


def _inputs(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 1.5 + 1.2
    # A quarter of the entries on a coarse grid, so H lands exactly on thresholds.
    grid = torch.randint(-4, 12, shape, generator=g).float() / 4
    mask = torch.rand(shape, generator=g) < 0.25
    return torch.where(mask, grid, x)


CASES = [
    pytest.param({}, id="default"),
    pytest.param({"v_threshold": 0.5}, id="vth0.5"),
    pytest.param({"v_threshold": 0.3, "tau": 4.0}, id="vth0.3-tau4"),
    pytest.param({"tau": 3.0}, id="tau3"),
    pytest.param({"surrogate": "atan"}, id="atan"),
    pytest.param({"surrogate": "sigmoid", "alpha": 2.5}, id="sigmoid-alpha2.5"),
    pytest.param({"learnable_tau": True}, id="plif"),
    pytest.param({"learnable_tau": True, "tau": 3.0, "surrogate": "atan"}, id="plif-atan"),
    pytest.param({"detach_reset": False}, id="no-detach"),
    pytest.param({"liaf": True, "learnable_tau": True}, id="pliaf"),
    pytest.param({"liaf": True, "detach_reset": False}, id="liaf-no-detach"),
]
SHAPES = [(1, 3), (2, 5), (4, 2, 7), (8, 2, 3, 4, 4), (16, 1, 33)]


def _reference_for(node: LIFNode, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return reference_lif(
        x,
        tau=node._tau,
        v_th=node.v_threshold,
        kind=node.surrogate,
        alpha=node.alpha,
        w=w,
        detach_reset=node.detach_reset,
        liaf=node.liaf,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kwargs", CASES)
def test_matches_reference(kwargs: dict, shape: tuple[int, ...], backend: str) -> None:
    x = _inputs(shape, seed=len(shape) * 31 + shape[0]).requires_grad_()
    node = LIFNode(backend=backend, **kwargs)
    w = None
    if node.learnable_tau:
        with torch.no_grad():
            node.w.fill_(0.35)  # away from the tau=2 init, so tau enters non-trivially
        w = torch.tensor(0.35, requires_grad=True)
    out = node(x)
    ref = _reference_for(node, x, w)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert torch.equal(out, ref), "forward differs from the reference"
    if not node.liaf:
        assert 0 < out.sum() < out.numel() or out.numel() < 20, "test input should make some spikes"

    grad = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    (gx,) = torch.autograd.grad(out, x, grad, retain_graph=node.learnable_tau)
    (gx_ref,) = torch.autograd.grad(ref, x, grad, retain_graph=node.learnable_tau)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    if node.learnable_tau:
        (gw,) = torch.autograd.grad(out, node.w, grad)
        (gw_ref,) = torch.autograd.grad(ref, w, grad)
        torch.testing.assert_close(gw, gw_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block_elements", [1, 40, 100, 1 << 30])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"learnable_tau": True}, {"liaf": True, "detach_reset": False}],
    ids=["lif", "plif", "liaf-no-detach"],
)
def test_time_blocking_is_invisible(
    kwargs: dict, block_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fused backend cuts time into blocks by size (one step, several, a ragged last
    # block, everything at once); none of that may change the result.
    monkeypatch.setattr(neuron, "_BLOCK_ELEMENTS", block_elements)
    x = _inputs((16, 1, 33), seed=11).requires_grad_()
    node = LIFNode(**kwargs)
    w = None
    if node.learnable_tau:
        w = torch.tensor(0.0, requires_grad=True)
    out = node(x)
    ref = _reference_for(node, x, w)
    assert torch.equal(out, ref)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    out.backward(grad)
    gx = x.grad.clone()
    x.grad = None
    ref.backward(grad)
    torch.testing.assert_close(gx, x.grad, rtol=1e-5, atol=1e-6)
    if w is not None:
        torch.testing.assert_close(node.w.grad, w.grad, rtol=1e-4, atol=1e-5)


def test_hand_computed_trace() -> None:
    # tau 2: H = (V + X) / 2. X = 1.5: H = 0.75 (V=0.75), 1.125 -> spike (V=0), 0.75, 1.125 -> spike.
    # X = 2.0 reaches H = 1.0 == V_th exactly at t=0: fires (>=).
    x = torch.tensor([[1.5, 2.0], [1.5, 0.0], [1.5, 0.0], [1.5, 2.0]])
    for backend in BACKENDS:
        out = LIFNode(backend=backend)(x)
        assert out.tolist() == [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]


def test_lif_step_is_pure() -> None:
    x, v = torch.tensor([1.5, 3.0]), torch.tensor([0.75, 0.0])
    s, v_next = lif_step(x, v)
    assert s.tolist() == [1.0, 1.0] and v_next.tolist() == [0.0, 0.0]
    s, v_next = lif_step(torch.tensor([0.5]), torch.tensor([0.5]))
    assert s.tolist() == [0.0] and v_next.tolist() == [0.5]
    assert v.tolist() == [0.75, 0.0], "inputs must not be modified"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_state_between_calls(backend: str) -> None:
    node = LIFNode(backend=backend)
    a, b = _inputs((6, 4, 5), seed=1), _inputs((3, 2, 2), seed=2) + 3.0
    first = node(a)
    node(b)  # different T and shape in between
    assert torch.equal(node(a), first)
    assert torch.equal(first, reference_lif(a))


def test_backends_agree_and_switch() -> None:
    model = torch.nn.Sequential(LIFNode(), torch.nn.Linear(5, 5), LIFNode(learnable_tau=True))
    x = _inputs((5, 3, 5), seed=3)
    assert set_backend(model, "loop") == 2
    looped = model(x)
    assert set_backend(model, "fused") == 2
    assert all(m.backend == "fused" for m in model if isinstance(m, LIFNode))
    assert torch.equal(model(x), looped)
    with pytest.raises(ValueError, match="backend"):
        set_backend(model, "cuda-kernel")


def test_autocast_bfloat16_matches_float32() -> None:
    # The recurrence runs in float32 under AMP; spikes come back in the input dtype.
    x = _inputs((6, 2, 9), seed=4).bfloat16().requires_grad_()
    node = LIFNode()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = node(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.float(), reference_lif(x.detach().float()))
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


def _threshold_edge_inputs(steps: int, n: int, *, v_th: float, k: float, seed: int) -> torch.Tensor:
    """float64 currents that put most membranes ``H`` within 1e-9 of ``V_th`` (either side or on it).

    Built step by step from the float64 membrane left by the previous step: ``X`` inverts
    the charge ``H = V + (X - V) k`` for ``H = V_th + offset``. float32 cannot tell these
    ``H`` from ``V_th`` (its spacing near 1 is 1.2e-7), so a float32 recurrence fires on many
    of the negative offsets.
    """
    g = torch.Generator().manual_seed(seed)
    offsets = torch.tensor(
        [-1.8e-9, -1e-9, -3e-10, -1e-12, -1e-15, 0.0, 1e-15, 1e-12, 1e-9], dtype=torch.float64
    )
    x = torch.empty(steps, n, dtype=torch.float64)
    v = torch.zeros(n, dtype=torch.float64)
    for t in range(steps):
        target = v_th + offsets[torch.randint(len(offsets), (n,), generator=g)]
        free = torch.rand(n, generator=g, dtype=torch.float64) * 2.0  # ordinary steps in between
        x[t] = torch.where(torch.rand(n, generator=g) < 0.7, v + (target - v) / k, free)
        h = v + (x[t] - v) * k
        v = torch.where(h >= v_th, torch.zeros_like(h), h)
    return x


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"tau": 3.0, "v_threshold": 0.5}, {"learnable_tau": True, "tau": 4.0, "v_threshold": 0.3}],
    ids=["lif", "tau3-vth0.5", "plif"],
)
def test_float64_threshold_edge_matches_loop_exactly(kwargs: dict) -> None:
    # The fused backend must not narrow float64 to float32: H = 0.9999999982 would round
    # to 1.0 and fire. Spikes and membranes (H, through the LIAF output) must be bit-equal
    # to the loop backend's, and to the reference's, at these edge inputs.
    node = LIFNode(**kwargs).double()
    k = float(torch.sigmoid(node.w.detach())) if node.learnable_tau else 1.0 / node._tau
    x = _threshold_edge_inputs(8, 4000, v_th=node.v_threshold, k=k, seed=12)
    loop_h = LIFNode(**kwargs, liaf=True, backend="loop").double()(x)
    near = (loop_h - node.v_threshold).abs() <= 2e-9
    assert near.float().mean() > 0.5, "most membranes must sit at the threshold edge"
    assert ((loop_h < node.v_threshold) & near).any() and ((loop_h >= node.v_threshold) & near).any()
    w = torch.tensor(float(node.w.detach()), dtype=torch.float64) if node.learnable_tau else None
    for liaf in (False, True):
        fused = LIFNode(**kwargs, liaf=liaf).double()
        loop = LIFNode(**kwargs, liaf=liaf, backend="loop").double()
        xf, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ref = fused(xf), loop(xl)
        assert out.dtype == torch.float64
        assert torch.equal(out, ref), f"{int((out != ref).sum())} outputs differ (liaf={liaf})"
        independent = reference_lif(x, tau=fused._tau, v_th=fused.v_threshold, w=w, liaf=liaf).double()
        assert torch.equal(out, independent)
        grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        out.backward(grad)
        ref.backward(grad)
        assert xf.grad.dtype == torch.float64
        torch.testing.assert_close(xf.grad, xl.grad, rtol=1e-10, atol=1e-12)
        if node.learnable_tau:
            torch.testing.assert_close(fused.w.grad, loop.w.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs_the_recurrence_in_float32(dtype: torch.dtype) -> None:
    # Only float64 keeps its own precision; half types are widened (outside AMP too).
    x = _inputs((8, 3, 17), seed=6).to(dtype)
    out = LIFNode(liaf=True)(x)
    assert out.dtype == dtype
    assert torch.equal(out, reference_lif(x.float(), liaf=True).to(dtype))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = _inputs((8, 4, 65), seed=5)
    node = LIFNode(learnable_tau=True)
    xc = x.cuda().requires_grad_()
    out = node.cuda()(xc)
    assert torch.equal(out.cpu(), reference_lif(x, w=torch.tensor(0.0)))
    out.sum().backward()
    xr = x.clone().requires_grad_()
    reference_lif(xr, w=torch.tensor(0.0)).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=1e-5, atol=1e-6)


def test_plif_parameterisation() -> None:
    node = LIFNode(tau=2.0, learnable_tau=True)
    assert node.w.item() == 0.0 and node.tau == pytest.approx(2.0)
    assert LIFNode(tau=4.0, learnable_tau=True).tau == pytest.approx(4.0)
    assert not list(LIFNode().parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 0.5}, "tau"),
        ({"tau": 1.0, "learnable_tau": True}, "learnable"),
        ({"v_threshold": 0.0}, "v_threshold"),
        ({"v_threshold": True}, "v_threshold"),
        ({"surrogate": "relu"}, "surrogate"),
        ({"alpha": -1.0}, "alpha"),
        ({"backend": "cupy"}, "backend"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LIFNode(**kwargs)


def test_rejects_empty_time_axis() -> None:
    with pytest.raises(ValueError, match=r"\[T, \.\.\.\]"):
        LIFNode()(torch.zeros(0, 3))
