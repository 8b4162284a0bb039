"""The three ways the engine differentiates twice (see "Modes" in docs/design.md).

Each kernel takes a :class:`~captum_higher_order.hessian.engine.Problem` and
vectors as a tuple of ``(k, B, *sample_shape)`` tensors (``k`` leading so it can
be vmapped) and returns the products in the same structure.

* ``fwd_rev``: forward-over-reverse, ``jvp(grad(s))`` vmapped over the ``k``
  vectors; the primal pass is shared by the chunk.
* ``rev_rev``: reverse-over-reverse; the first-order graph is built once per
  operator and every call is one batched backward through it.
* ``ggn``: ``J^T (d^2 l / dz^2) J v``, exact for networks that are piecewise
  linear in their input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, cast

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from captum_higher_order.hessian.engine import Problem

__all__ = [
    "hvp_fwd_rev",
    "hvp_ggn",
    "RevRevOperator",
    "forward_mode_blocker",
    "zeros_like_vectors",
]


def zeros_like_vectors(vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    return tuple(torch.zeros_like(v) for v in vectors)


def hvp_fwd_rev(problem: Problem, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    xs = problem.fmt.inputs
    grad_fn = torch.func.grad(problem.total, argnums=tuple(range(len(xs))))

    def one(*v: Tensor) -> Tuple[Tensor, ...]:
        return torch.func.jvp(grad_fn, xs, v)[1]

    return tuple(torch.func.vmap(one)(*vectors))


class RevRevOperator:
    """Reverse-over-reverse HVPs; the first-order graph is built once and reused
    by every call, which is what iterative solvers want."""

    def __init__(self, problem: Problem) -> None:
        self.xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
        with torch.enable_grad():
            total = problem.total(*self.xs)
            grads = torch.autograd.grad(total, self.xs, create_graph=True, allow_unused=True)
        self.grads = tuple(
            torch.zeros_like(x) if g is None else g for g, x in zip(grads, self.xs)
        )
        self.linear = not any(g.requires_grad for g in self.grads)

    def __call__(self, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        if self.linear:  # gradient does not depend on x: the Hessian is zero
            return zeros_like_vectors(vectors)
        live = [i for i, g in enumerate(self.grads) if g.requires_grad]
        outs = [self.grads[i] for i in live]
        grad_outputs = [vectors[i] for i in live]
        result: Tuple[Optional[Tensor], ...]
        if self.xs[0].device.type != "cuda":
            # On the CPU one plain backward per vector is 2-3x faster than the
            # vmapped batch (is_grads_batched) through a convolutional graph
            # (benchmarks/caso.py measures both).
            return self._finish(self._one_at_a_time(outs, grad_outputs, vectors[0].shape[0]),
                                vectors)
        try:
            result = torch.autograd.grad(
                outs, self.xs, grad_outputs=grad_outputs, retain_graph=True,
                allow_unused=True, is_grads_batched=True,
            )
        except RuntimeError:
            # An operator without a batching rule for its double backward:
            # one backward per vector instead.
            result = self._one_at_a_time(outs, grad_outputs, vectors[0].shape[0])
        return self._finish(result, vectors)

    @staticmethod
    def _finish(
        result: Tuple[Optional[Tensor], ...], vectors: Tuple[Tensor, ...]
    ) -> Tuple[Tensor, ...]:
        return tuple(
            torch.zeros_like(v) if r is None else r.detach() for r, v in zip(result, vectors)
        )

    def _one_at_a_time(
        self, outs: List[Tensor], grad_outputs: List[Tensor], k: int
    ) -> Tuple[Optional[Tensor], ...]:
        per_vector = [
            torch.autograd.grad(
                outs, self.xs, grad_outputs=[v[j] for v in grad_outputs],
                retain_graph=True, allow_unused=True,
            )
            for j in range(k)
        ]
        return tuple(
            None if per_vector[0][i] is None else torch.stack([p[i] for p in per_vector])
            for i in range(len(self.xs))
        )


def hvp_ggn(problem: Problem, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    xs = problem.fmt.inputs
    # has_aux=False: vjp returns (output, vjp_fn), never the 3-tuple with aux.
    z, vjp_fn = cast(
        Tuple[Tensor, Callable[..., Tuple[Tensor, ...]]],
        torch.func.vjp(problem.logits, *xs),
    )
    z = z.detach()
    loss_grad = torch.func.grad(problem.loss_of_logits)

    def jacobian_vector(*v: Tensor) -> Tensor:
        return torch.func.jvp(problem.logits, xs, v)[1]

    def loss_curvature(u: Tensor) -> Tensor:
        return torch.func.jvp(loss_grad, (z,), (u,))[1]

    jv = torch.func.vmap(jacobian_vector)(*vectors)
    hjv = torch.func.vmap(loss_curvature)(jv)
    return tuple(torch.func.vmap(vjp_fn)(hjv))


def forward_mode_blocker(forward_func: Any, module: Optional[nn.Module]) -> Optional[str]:
    """Why forward-mode AD cannot be trusted for this forward, or None.

    TorchScript's profiling executor runs a scripted module's first call as
    written and later calls through an optimised graph that drops forward-mode
    tangents: ``fwd_rev`` HVPs come back silently wrong (often zero) from the
    second call on, so nothing raises and no fallback could trigger. Traced
    modules keep their tangents, but take the same executor, so they are
    treated alike."""
    seen = [forward_func, getattr(forward_func, "__self__", None), module]
    for obj in seen:
        if isinstance(obj, torch.jit.ScriptFunction):
            return "a TorchScript function (torch.jit.script)"
        if isinstance(obj, nn.Module):
            for name, sub in obj.named_modules():
                if isinstance(sub, torch.jit.ScriptModule):
                    where = f"module {name!r}" if name else "the model"
                    kind = "traced" if isinstance(sub, torch.jit.TracedModule) else "scripted"
                    return f"{where} is a TorchScript ({kind}) module"
    return None
