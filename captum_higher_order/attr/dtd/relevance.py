"""One forward pass through the tape and the DTD relevance pass back down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import Tensor

from captum_higher_order._inputs import select_objective
from captum_higher_order.attr.dtd.ops import AddOp, Node, Op, WeightOp, run_tape
from captum_higher_order.attr.dtd.rules import Rule

__all__ = ["ForwardPass", "relevance_pass", "top_relevance", "layer_gradients",
           "input_gradient"]


@dataclass
class ForwardPass:
    """Everything one forward and one relevance pass produce."""

    nodes: List[Node]
    rules: List[Rule]  # one per weight layer, bottom first
    weight_ix: List[int]  # node index of every weight layer
    x: Tensor
    slots: Dict[int, Tensor]  # every tensor of the forward, by slot
    out: Tensor
    score: Tensor
    target: Optional[Tensor]
    rel_out: Dict[int, Tensor]  # relevance at each node's output
    rel_in: Dict[int, Tensor]  # relevance each node sends to its (first) input
    input_relevance: Tensor  # relevance at the model input

    @property
    def ops(self) -> List[Op]:
        return [n.op for n in self.nodes]

    @property
    def acts(self) -> List[Tensor]:
        """The (first) input of every node."""
        return [self.slots[n.src[0]] for n in self.nodes]


def top_relevance(out: Tensor, score: Tensor, target: Optional[Tensor]) -> Tensor:
    """The explained output placed at its class, zero elsewhere (Captum's LRP)."""
    if out.dim() == 1:
        return score
    assert target is not None  # select_objective has raised for (B, C>1) without one
    return torch.zeros_like(out).scatter(1, target.to(out.device).view(-1, 1),
                                         score.view(-1, 1))


def relevance_pass(nodes: List[Node], rules: List[Rule], slots: Dict[int, Tensor],
                   top: Tensor, eps: float) -> Dict[str, Dict[int, Tensor]]:
    """Send ``top`` (relevance at the output) down the tape with each weight
    layer's rule. Relevance reaching a slot from several consumers is summed."""
    pending: Dict[int, Tensor] = {nodes[-1].dst: top}
    rel_out: Dict[int, Tensor] = {}
    rel_in: Dict[int, Tensor] = {}
    w_rank = sum(isinstance(n.op, WeightOp) for n in nodes) - 1
    for k in range(len(nodes) - 1, -1, -1):
        node = nodes[k]
        relevance = pending.pop(node.dst, None)
        if relevance is None:  # the output of this node does not reach the top
            relevance = torch.zeros_like(slots[node.dst])
        rel_out[k] = relevance
        xs = [slots[s] for s in node.src]
        op = node.op
        if isinstance(op, WeightOp):
            outs = [op.propagate(rules[w_rank], xs[0], relevance, eps)]
            w_rank -= 1
        elif isinstance(op, AddOp):
            outs = op.propagate_all(xs, relevance, eps)
        else:
            outs = [op.propagate(xs[0], relevance, eps)]
        rel_in[k] = outs[0]
        for s, r in zip(node.src, outs):
            pending[s] = pending[s] + r if s in pending else r
    return {"rel_out": rel_out, "rel_in": rel_in, "input": {0: pending[0]}}


def layer_gradients(fw: ForwardPass) -> List[Tensor]:
    """``g_l = d F / d a_l`` at every weight layer's input slot, (B, D_l) each
    (the total derivative: a slot read by several nodes moves in all of them)."""
    with torch.enable_grad():
        x = fw.x.detach().requires_grad_(True)
        slots = run_tape(fw.nodes, {0: x})
        score = select_objective(slots[fw.nodes[-1].dst], fw.target, "output")
        ins = [slots[fw.nodes[k].src[0]] for k in fw.weight_ix]
        grads = torch.autograd.grad(score.sum(), ins, allow_unused=True)
    return [torch.zeros_like(a).reshape(a.shape[0], -1) if g is None
            else g.reshape(g.shape[0], -1) for a, g in zip(ins, grads)]


def input_gradient(fw: ForwardPass) -> Tensor:
    with torch.enable_grad():
        x = fw.x.detach().requires_grad_(True)
        slots = run_tape(fw.nodes, {0: x})
        score = select_objective(slots[fw.nodes[-1].dst], fw.target, "output")
        (g,) = torch.autograd.grad(score.sum(), x)
    return g


