"""Hessian-vector products through a first-order graph a method recorded itself.

Some methods already hold the graph the second derivatives need: TaylorCAM
records the network *after* a layer once (the layers before it run under
``no_grad``), takes its first-order gradient there, and wants ``H v`` for many
``v`` without running the layers before it again. :class:`RecordedGradient`
keeps that gradient (built with ``create_graph=True``) and is an
:class:`~captum_higher_order.hessian.engine.Engine` kernel for
reverse-over-reverse products: pass it as ``Engine(problem, "rev_rev",
rev_rev=recorded)`` and :meth:`Engine.apply` adds the chunking, out-of-memory
halving, precision context and progress bar as for any other method.

Each product is one backward pass through the recorded backward graph, the same
work as one reverse-over-reverse HVP of the engine (see "Modes" in
docs/design.md), minus every layer outside the recorded graph.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["RecordedGradient"]


class RecordedGradient:
    """The gradient of a recorded scalar with respect to recorded leaves, kept
    differentiable, as a reverse-over-reverse kernel.

    Args:
        score (Tensor): A scalar computed from ``leaves`` with autograd
            recording (e.g. the summed per-sample objective).
        leaves (sequence of Tensor): Tensors that require grad; the products
            are taken with respect to them.

    Calling the object with ``(problem, vectors)``, ``vectors`` a tuple of
    ``(k, *leaf.shape)`` tensors, one per leaf, returns the ``k`` products
    ``H v`` per leaf (``problem`` is ignored: the graph is already recorded).
    The graph is retained, so one object serves every chunk.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian.recorded import RecordedGradient
        >>> x = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> rec = RecordedGradient((x[:, 0] ** 2 * x[:, 1]).sum(), [x])
        >>> v = torch.eye(2).view(2, 1, 2)           # k=2 vectors for one sample
        >>> rec(None, (v,))[0].squeeze(1).tolist()   # [[2 x1, 2 x0], [2 x0, 0]]
        [[4.0, 2.0], [2.0, 0.0]]
    """

    def __init__(self, score: Tensor, leaves: Sequence[Tensor]) -> None:
        self.leaves = tuple(leaves)
        if score.dim() != 0:
            raise ValueError(f"`score` must be a scalar, got shape {tuple(score.shape)}.")
        with torch.enable_grad():
            grads = torch.autograd.grad(score, self.leaves, create_graph=True, allow_unused=True)
        self.grads = tuple(
            torch.zeros_like(x) if g is None else g for g, x in zip(grads, self.leaves)
        )

    def gradient(self) -> Tuple[Tensor, ...]:
        """The first-order gradient, detached, one per leaf."""
        return tuple(g.detach() for g in self.grads)

    def __call__(self, problem: Any, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        live = [i for i, g in enumerate(self.grads) if g.requires_grad]
        if not live:  # the gradient does not depend on the leaves: H = 0
            return tuple(torch.zeros_like(v) for v in vectors)
        outs = [self.grads[i] for i in live]
        grad_outputs = [vectors[i] for i in live]
        result: Optional[Tuple[Optional[Tensor], ...]] = None
        if vectors[0].device.type == "cuda":
            try:
                result = torch.autograd.grad(
                    outs, self.leaves, grad_outputs=grad_outputs, retain_graph=True,
                    allow_unused=True, is_grads_batched=True,
                )
            except RuntimeError as err:
                if "out of memory" in str(err):
                    raise
                result = None  # no batching rule for some double backward: one at a time
        if result is None:
            # On the CPU one backward per vector beats the vmapped batch through
            # convolutions (benchmarks/caso.py and benchmarks/taylor_cam.py).
            result = self._one_at_a_time(outs, grad_outputs, vectors[0].shape[0])
        return tuple(
            torch.zeros_like(v) if r is None else r.detach() for r, v in zip(result, vectors)
        )

    def _one_at_a_time(
        self, outs: Sequence[Tensor], grad_outputs: Sequence[Tensor], k: int
    ) -> Tuple[Optional[Tensor], ...]:
        per_vector = [
            torch.autograd.grad(
                list(outs), self.leaves, grad_outputs=[v[j] for v in grad_outputs],
                retain_graph=True, allow_unused=True,
            )
            for j in range(k)
        ]
        return tuple(
            None if per_vector[0][i] is None else torch.stack([p[i] for p in per_vector])
            for i in range(len(self.leaves))
        )
