"""Multi-step leaky integrate-and-fire neurons with surrogate gradients.

Semantics follow SpikingJelly's ``LIFNode`` / ``ParametricLIFNode`` with
``decay_input=True``, ``v_reset=0`` (hard reset) and ``detach_reset=True``.
For every time step ``t`` of an input current ``X`` laid out ``[T, B, ...]``::

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau      # charge (fixed tau)
    H[t] = V[t-1] + (X[t] - V[t-1]) * k        # charge (PLIF, k = sigmoid(w) = 1 / tau)
    S[t] = H[t] >= V_th                         # fire (Heaviside)
    V[t] = H[t] * (1 - S[t])                    # hard reset to 0

with ``V[-1] = 0``: every forward pass starts from rest, so no state leaks from
one call to the next. The Heaviside step has a surrogate derivative in the
backward pass: ``sigmoid`` (``alpha * sg * (1 - sg)`` with ``sg = sigmoid(alpha u)``,
default alpha 4) or ``atan`` (``(alpha / 2) / (1 + (pi/2 alpha u)^2)``, default
alpha 2), with ``u = H - V_th``. ``detach_reset`` drops the reset's dependence on
``S`` from the gradient, so ``dV[t]/dH[t] = 1 - S[t]``.

With ``liaf=True`` (leaky integrate and *analog* fire, as the public
Spikeformer's ImageNet model uses) the layer outputs ``ReLU(H[t])`` instead of
``S[t]``; the membrane still fires and resets as above.

Two backends compute the same outputs, bit for bit:

``"loop"``
    :func:`lif_step` called once per time step under autograd (the textbook
    reference; autograd records ~7 nodes per step).
``"fused"`` (default)
    :class:`FusedLIF`: the forward recurrence runs in place without recording a
    graph, saving only ``H``; the backward pass is a hand-written reverse
    recurrence ``dL/dH[t] = dL/dS[t] sg'(u[t]) + (1 - k) c[t] dL/dH[t+1]`` with
    ``c[t] = 1 - S[t]`` (detach_reset) or ``1 - S[t] - H[t] sg'(u[t])``. The
    recurrence runs in float64 for float64 inputs and in float32 for every other
    dtype (float16 and bfloat16 too, also under AMP); outputs come back in the
    input's dtype. float64 is not narrowed because the spikes would then differ from
    the loop backend (and SpikingJelly) wherever ``H`` lies within float32 rounding
    of ``V_th``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "SURROGATES",
    "BACKENDS",
    "surrogate_derivative",
    "SurrogateSpike",
    "lif_step",
    "lif_loop",
    "FusedLIF",
    "LIFNode",
    "set_backend",
]

SURROGATES: dict[str, float] = {"sigmoid": 4.0, "atan": 2.0}
"""Surrogate name -> default ``alpha`` (SpikingJelly's defaults)."""

BACKENDS = ("fused", "loop")


def _check_surrogate(surrogate: str, alpha: float | None) -> float:
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, not {surrogate!r}")
    if alpha is None:
        return SURROGATES[surrogate]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"surrogate alpha must be a positive number, not {alpha!r}")
    return float(alpha)


def surrogate_derivative(u: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
    """Derivative of the smooth stand-in for ``heaviside(u)`` (``u = H - V_th``)."""
    if surrogate == "sigmoid":
        sg = torch.sigmoid(u * alpha)
        return sg.mul_(1.0 - sg).mul_(alpha)
    if surrogate == "atan":
        z = u * (math.pi / 2 * alpha)
        return z.square_().add_(1.0).reciprocal_().mul_(alpha / 2)
    raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, not {surrogate!r}")


class SurrogateSpike(torch.autograd.Function):
    """``heaviside(u)`` (``u >= 0`` fires) forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.surrogate, ctx.alpha = surrogate, alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (u,) = ctx.saved_tensors
        return grad * surrogate_derivative(u, ctx.surrogate, ctx.alpha), None, None


def lif_step(
    x: torch.Tensor,
    v: torch.Tensor,
    *,
    tau: float = 2.0,
    decay: torch.Tensor | None = None,
    v_threshold: float = 1.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = True,
    liaf: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF time step: returns ``(output, v_next)``; pure (no state, autograd-friendly).

    Parameters
    ----------
    x, v:
        Input current and membrane potential after the previous step's reset.
    tau:
        Membrane time constant; the charge divides by it (ignored when ``decay`` is given).
    decay:
        PLIF gate ``k = sigmoid(w)``; the charge multiplies by it.
    v_threshold, surrogate, alpha, detach_reset, liaf:
        As in :class:`LIFNode`; ``output`` is the spike, or ``ReLU(H)`` when ``liaf``.
    """
    alpha = _check_surrogate(surrogate, alpha)
    h = v + ((x - v) / tau if decay is None else (x - v) * decay)
    spike = SurrogateSpike.apply(h - v_threshold, surrogate, alpha)
    reset = spike.detach() if detach_reset else spike
    return (torch.relu(h) if liaf else spike), h * (1.0 - reset)


def lif_loop(
    x: torch.Tensor,
    *,
    tau: float = 2.0,
    decay: torch.Tensor | None = None,
    v_threshold: float = 1.0,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    detach_reset: bool = True,
    liaf: bool = False,
) -> torch.Tensor:
    """Reference multi-step LIF: :func:`lif_step` over ``x[0] .. x[T-1]`` starting from ``v = 0``."""
    v = torch.zeros_like(x[0])
    outputs = []
    for x_t in x:
        out, v = lif_step(
            x_t,
            v,
            tau=tau,
            decay=decay,
            v_threshold=v_threshold,
            surrogate=surrogate,
            alpha=alpha,
            detach_reset=detach_reset,
            liaf=liaf,
        )
        outputs.append(out)
    return torch.stack(outputs)


def _charge_(buf: torch.Tensor, tau: float, decay: torch.Tensor | None) -> torch.Tensor:
    # Same rounding as lif_step: divide by tau, or multiply by the PLIF gate.
    return buf.div_(tau) if decay is None else buf.mul_(decay)


_BLOCK_ELEMENTS = 1 << 16  # CPU: values per time block; a few such buffers fit in L2 cache


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype the fused recurrence runs in: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _time_blocks(steps: int, per_step: int, device: torch.device) -> list[tuple[int, int]]:
    """Split ``range(steps)`` into runs ``[t0, t1)`` of about ``_BLOCK_ELEMENTS`` values (>= 1 step).

    Accelerators take all steps in one block: they have no cache to fit, and fewer
    (larger) kernel launches are what makes them fast.
    """
    if device.type != "cpu":
        return [(0, steps)]
    length = max(1, min(steps, _BLOCK_ELEMENTS // max(per_step, 1)))
    return [(t0, min(t0 + length, steps)) for t0 in range(0, steps, length)]


class FusedLIF(torch.autograd.Function):
    """Multi-step LIF with a graph-free forward and a hand-written BPTT backward.

    ``apply(x, decay, tau, v_threshold, surrogate, alpha, detach_reset, liaf)``;
    ``decay`` is the PLIF gate tensor (0-dim) or ``None`` for a fixed ``tau``.

    Time is cut into blocks of consecutive steps holding about ``_BLOCK_ELEMENTS``
    values (one step per block for large layers, all steps for small ones). The
    recurrence itself takes a few in-place operations per step; everything that
    does not depend on the previous step (surrogate derivative, reset mask,
    scaling) runs once per block. Blocks keep the working set in cache and let the
    allocator recycle buffers, whereas operations over a large ``[T, ...]`` tensor
    stream it through memory once each (and fault in fresh pages). Only ``H`` is
    saved for the backward pass (and ``X`` when the PLIF gate needs a gradient).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        decay: torch.Tensor | None,
        tau: float,
        v_threshold: float,
        surrogate: str,
        alpha: float,
        detach_reset: bool,
        liaf: bool,
    ) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # float32 recurrence under AMP
            out = FusedLIF._forward(ctx, x, decay, tau, v_threshold, liaf)
        ctx.cfg = (tau, v_threshold, surrogate, alpha, detach_reset, liaf, ctx.learn_decay, x.dtype)
        return out.view(x.shape).to(x.dtype)

    @staticmethod
    def _forward(
        ctx: Any, x: torch.Tensor, decay: torch.Tensor | None, tau: float, v_threshold: float, liaf: bool
    ) -> torch.Tensor:
        work = _work_dtype(x.dtype)
        xw = x.detach().to(work).contiguous().view(x.shape[0], -1)
        gate = None if decay is None else decay.detach().to(work)
        out = torch.empty_like(xw)
        v = torch.zeros_like(xw[0])
        spike = torch.empty_like(v) if liaf else None
        # tau = 2**k: V + (X - V) * 2**-k in one op; exact, because scaling by 2**-k does not round.
        shift_charge = gate is None and math.frexp(tau)[0] == 0.5
        blocks: list[torch.Tensor] = []
        for t0, t1 in _time_blocks(*xw.shape, xw.device):
            h = torch.empty_like(xw[t0:t1])
            for t in range(t0, t1):
                h_t = h[t - t0]
                torch.sub(xw[t], v, out=h_t)
                if shift_charge:
                    torch.add(v, h_t, alpha=1.0 / tau, out=h_t)
                else:
                    _charge_(h_t, tau, gate).add_(v)
                s_t = spike if spike is not None else out[t]
                torch.ge(h_t, v_threshold, out=s_t)
                torch.addcmul(h_t, h_t, s_t, value=-1.0, out=v)  # H (1 - S), exact for S in {0, 1}
            if liaf:
                torch.clamp_min(h, 0.0, out=out[t0:t1])
            blocks.append(h)
        ctx.learn_decay = decay is not None and ctx.needs_input_grad[1]
        ctx.save_for_backward(xw if ctx.learn_decay else None, gate, *blocks)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            grad_x, grad_decay = FusedLIF._backward(ctx, grad_out)
        return grad_x.view(grad_out.shape), grad_decay, None, None, None, None, None, None

    @staticmethod
    def _backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        xw, gate, *blocks = ctx.saved_tensors
        tau, v_threshold, surrogate, alpha, detach_reset, liaf, learn_decay, dtype = ctx.cfg
        g = grad_out.to(_work_dtype(dtype)).contiguous().view(grad_out.shape[0], -1)
        steps = g.shape[0]
        # grad_x[t] holds dL/dH[t] / scale until step t is finished, then dL/dX[t]: the
        # constant factor `scale` of the surrogate derivative is applied when finishing.
        scale = 1.0 if liaf else (alpha if surrogate == "sigmoid" else alpha / 2)
        # dH[t+1]/dV[t] and dH/dX (times scale); tensors for PLIF, so a GPU never waits on .item().
        leak = 1.0 - 1.0 / tau if gate is None else 1.0 - gate
        to_x = scale / tau if gate is None else gate * scale
        grad_x = torch.empty_like(g)
        grad_gate = torch.zeros((), dtype=g.dtype, device=g.device) if learn_decay else None
        ranges = _time_blocks(steps, g.shape[1], g.device)
        # Scratch reused by every block (fresh buffers per block would fault in new pages).
        u_buf, c_buf = torch.empty_like(blocks[0]), torch.empty_like(blocks[0])
        for (t0, t1), h in zip(reversed(ranges), reversed(blocks), strict=True):
            gh, u, coupling = grad_x[t0:t1], u_buf[: t1 - t0], c_buf[: t1 - t0]
            if liaf:
                torch.gt(h, 0.0, out=gh).mul_(g[t0:t1])
            elif surrogate == "sigmoid":  # dL/dS * sigmoid'(alpha u) / alpha
                torch.sub(h, v_threshold, out=u).mul_(alpha).sigmoid_()
                torch.ops.aten.sigmoid_backward.grad_input(g[t0:t1], u, grad_input=gh)
            else:  # dL/dS / (1 + (pi/2 alpha u)^2)
                torch.sub(h, v_threshold, out=u).mul_(math.pi / 2 * alpha).square_().add_(1.0)
                torch.div(g[t0:t1], u, out=gh)
            torch.lt(h, v_threshold, out=coupling)  # dV[t]/dH[t] = 1 - S[t] (detached reset)
            if not detach_reset:
                coupling.sub_(h * surrogate_derivative(h - v_threshold, surrogate, alpha))
            if isinstance(leak, torch.Tensor):
                coupling.mul_(leak)
            for t in range(min(t1, steps - 1) - 1, t0 - 1, -1):
                grad_x[t].addcmul_(
                    coupling[t - t0], grad_x[t + 1], value=1.0 if isinstance(leak, torch.Tensor) else leak
                )
            # Steps t0+1 .. t1 are complete now (t0 still feeds the block before).
            hi = min(t1 + 1, steps)
            _finish(grad_x, t0 + 1, hi, h[: hi - t0 - 1], xw, grad_gate, v_threshold, to_x)
        _finish(grad_x, 0, 1, None, xw, grad_gate, v_threshold, to_x)
        grad_decay = None
        if grad_gate is not None:
            grad_decay = (grad_gate * scale).reshape(gate.shape)
        return grad_x.to(dtype), grad_decay


def _finish(
    grad_x: torch.Tensor,
    lo: int,
    hi: int,
    h_prev: torch.Tensor | None,
    xw: torch.Tensor | None,
    grad_gate: torch.Tensor | None,
    v_threshold: float,
    to_x: float | torch.Tensor,
) -> None:
    """Turn steps ``lo .. hi-1`` from scaled dL/dH into dL/dX; accumulate the PLIF gate's gradient.

    ``h_prev`` holds ``H`` of steps ``lo-1 .. hi-2`` (``None`` when ``lo == 0``).
    """
    if hi <= lo:
        return
    gh = grad_x[lo:hi]
    if grad_gate is not None:
        # dH[t]/dk = X[t] - V[t-1], with V[t-1] = H[t-1] (1 - S[t-1]) and V[-1] = 0.
        drive = xw[lo:hi].clone()
        if h_prev is not None:
            drive.sub_(h_prev * (h_prev < v_threshold))
        grad_gate.add_((gh * drive).sum())
    gh.mul_(to_x)


class LIFNode(nn.Module):
    r"""Multi-step LIF neuron layer, input and output laid out ``[T, B, ...]``.

    Implements ``H = V + (X - V) / tau``, ``S = H >= V_th``, ``V = H (1 - S)``
    from ``V = 0`` at every call (see the module docstring).

    Parameters
    ----------
    tau:
        Membrane time constant (>= 1; > 1 when learnable); 2.0 by default.
    v_threshold:
        Firing threshold (> 0); 1.0 by default.
    surrogate:
        ``"sigmoid"`` (default) or ``"atan"``.
    alpha:
        Surrogate sharpness; ``None`` takes the surrogate's default (4 / 2).
    learnable_tau:
        PLIF: learn ``w`` with ``tau = 1 / sigmoid(w)``, initialised from ``tau``.
    detach_reset:
        Leave the reset out of the gradient (default ``True``).
    liaf:
        Output ``ReLU(H)`` (analog) instead of spikes; the neuron still resets on ``H >= V_th``.
    backend:
        ``"fused"`` (default) or ``"loop"`` (per-step autograd reference).

    Attributes
    ----------
    w:
        PLIF parameter (only when ``learnable_tau``).
    """

    def __init__(
        self,
        *,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        learnable_tau: bool = False,
        detach_reset: bool = True,
        liaf: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__()
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 1.0:
            raise ValueError(f"LIF tau must be a number >= 1, not {tau!r}")
        if learnable_tau and tau == 1.0:
            raise ValueError("a learnable LIF tau must start above 1 (sigmoid(w) < 1), not 1.0")
        if isinstance(v_threshold, bool) or not isinstance(v_threshold, (int, float)) or not v_threshold > 0:
            raise ValueError(f"LIF v_threshold must be a positive number, not {v_threshold!r}")
        self.alpha = _check_surrogate(surrogate, alpha)
        self.surrogate = surrogate
        self.v_threshold = float(v_threshold)
        self.detach_reset = bool(detach_reset)
        self.learnable_tau = bool(learnable_tau)
        self.liaf = bool(liaf)
        self.backend = backend
        self._tau = float(tau)
        if self.learnable_tau:
            self.w = nn.Parameter(torch.tensor(-math.log(self._tau - 1.0)))

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"LIF backend must be one of {BACKENDS}, not {value!r}")
        self._backend = value

    @property
    def tau(self) -> float:
        """Current membrane time constant (``1 / sigmoid(w)`` for PLIF)."""
        if self.learnable_tau:
            return float(1.0 / torch.sigmoid(self.w.detach()))
        return self._tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[0] == 0:
            raise ValueError(f"LIFNode expects input [T, ...] with T >= 1, got shape {tuple(x.shape)}")
        decay = torch.sigmoid(self.w) if self.learnable_tau else None
        if self._backend == "loop":
            return lif_loop(
                x,
                tau=self._tau,
                decay=decay,
                v_threshold=self.v_threshold,
                surrogate=self.surrogate,
                alpha=self.alpha,
                detach_reset=self.detach_reset,
                liaf=self.liaf,
            )
        return FusedLIF.apply(
            x, decay, self._tau, self.v_threshold, self.surrogate, self.alpha, self.detach_reset, self.liaf
        )

    def extra_repr(self) -> str:
        tau = "learnable, init " if self.learnable_tau else ""
        return (
            f"tau={tau}{self._tau}, v_threshold={self.v_threshold}, surrogate={self.surrogate}"
            f"(alpha={self.alpha}), detach_reset={self.detach_reset}, liaf={self.liaf}, "
            f"backend={self._backend}"
        )


def set_backend(module: nn.Module, backend: str) -> int:
    """Switch every :class:`LIFNode` inside ``module`` to ``backend``; returns how many changed."""
    if backend not in BACKENDS:
        raise ValueError(f"LIF backend must be one of {BACKENDS}, not {backend!r}")
    nodes = [m for m in module.modules() if isinstance(m, LIFNode)]
    for node in nodes:
        node.backend = backend
    return len(nodes)
