"""The root-point check behind :meth:`DTDRootCheck.check`, one weight layer at a time.

For weight layer ``l`` (tape node ``k``, input ``a``, output relevance ``R``):

1. :func:`select_pairs` picks the (sample, neuron) pairs with relevance: all of
   them, or ``max_roots`` per sample drawn with probability ``|R_j| / sum |R|``;
2. per chunk of pairs, the rule gives each root ``r_j`` (:meth:`Rule.roots`,
   weight rows from the neuron's receptive field, :meth:`WeightOp.rows`);
3. :func:`segment_pass` sends each root and ``n`` midpoints of its segment to
   ``a`` through the rest of the tape (forward and backward; every other slot
   the rest reads is held at its value at the actual input);
4. :func:`root_flips`, the rule's domain, the Taylor residual and
   :func:`root_dependence` are accumulated per sample by :class:`LayerTotals`.

The definitions of the fields are on :class:`DTDReport` and in
docs/dtd_root_check.md ("The report").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import select_objective
from captum_higher_order.attr.dtd.ops import ActOp, WeightOp, run_tape
from captum_higher_order.attr.dtd.relevance import ForwardPass
from captum_higher_order.attr.dtd.rules import Box, Rule

__all__ = ["CheckSettings", "check_layer", "switch_owners", "select_pairs",
           "POINT_ELEMENTS"]

#: Input elements sent through the network above a layer per forward pass
#: (at most; ``chunk_size`` points also bound it): 2**22 float32 numbers are
#: 16 MiB per activation of that size, which keeps image-sized layers bounded.
POINT_ELEMENTS = 2**22


@dataclass
class CheckSettings:
    """The knobs of one :meth:`DTDRootCheck.check` call (documented there)."""

    n_seg: int
    n_dir: int
    flip_tol: float
    fd_step: float
    chunk_size: int
    local: bool
    tiny: float
    max_roots: Optional[int]
    gen: torch.Generator  # random directions of the root dependence
    sample_gen: torch.Generator  # neurons drawn when a layer has more than max_roots


@dataclass
class LayerSetup:
    """What stays fixed while the roots of one weight layer are checked."""

    k: int
    op: WeightOp
    rule: Rule
    a: Tensor  # (B, *in)
    a_flat: Tensor  # (B, D)
    box: Box  # flattened (B, D) bounds or None
    bias_units: Tensor  # (J,)
    rel: Tensor  # (B, J) output relevance
    grad: Tensor  # (B, D) gradient of F_l at a
    start: int  # first tape node to rerun
    live: List[int]  # slots read from the actual forward (besides the layer input)
    switches: List[int]  # nodes of ReLUs / max-pools to watch
    refs: Dict[int, Tuple[Tensor, Tensor]] = field(default_factory=dict)
    own: Optional[int] = None  # the ReLU right on top of the layer


def switch_owners(fw: ForwardPass) -> Dict[int, int]:
    """Node index of every ReLU / max-pool -> the weight layer below it (the last
    weight layer before it on the tape)."""
    owner: Dict[int, int] = {}
    layer = -1
    for k, node in enumerate(fw.nodes):
        if isinstance(node.op, WeightOp):
            layer += 1
        elif isinstance(node.op, ActOp) and node.op.is_switch and layer >= 0:
            owner[k] = layer
    return owner


def _setup(fw: ForwardPass, li: int, grad: Tensor, owner: Dict[int, int],
           s: CheckSettings) -> LayerSetup:
    k = fw.weight_ix[li]
    node = fw.nodes[k]
    op = node.op
    assert isinstance(op, WeightOp)
    a = fw.slots[node.src[0]]
    batch = a.shape[0]
    rule = fw.rules[li]
    box = rule.box(a)
    if box is not None:
        box = (box[0].reshape(batch, -1), box[1].reshape(batch, -1))
    with torch.no_grad():
        bias_units = op.apply(torch.zeros(1, *a.shape[1:], dtype=a.dtype, device=a.device))
    start = min(i for i, n in enumerate(fw.nodes) if node.src[0] in n.src)
    written = {n.dst for n in fw.nodes[start:]}
    live = sorted({src for n in fw.nodes[start:] for src in n.src} - written - {node.src[0]})
    setup = LayerSetup(k, op, rule, a, a.reshape(batch, -1), box, bias_units.reshape(-1),
                       fw.rel_out[k].reshape(batch, -1), grad, start, live,
                       [m for m in sorted(owner) if m >= start and owner[m] >= li])
    for m in setup.switches:
        sw = fw.nodes[m].op
        assert isinstance(sw, ActOp)
        z = fw.slots[fw.nodes[m].src[0]]
        scale = s.flip_tol * z.reshape(batch, -1).abs().amax(1).clamp_min(s.tiny)
        setup.refs[m] = (sw.state(z), scale)
        if fw.nodes[m].src[0] == node.dst and sw.kind == "relu":
            setup.own = m
    return setup


def select_pairs(rel: Tensor, max_roots: Optional[int],
                 gen: torch.Generator) -> Tuple[Tensor, Tensor, Tensor]:
    """(sample, neuron) pairs to check, the weight of each, and (B,) bool
    "sampled". All neurons with ``|R_j| > 1e-12 sum |R|``, weighted by
    ``|R_j|``; where a sample has more than ``max_roots`` of them, ``max_roots``
    draws with probability ``|R_j| / sum |R|`` (with replacement), each weighted
    ``sum |R| / max_roots`` (importance sampling: weighted means become plain
    means over the draws, unbiased for the weighted mean over all roots)."""
    mag = rel.abs()
    total = mag.sum(1, keepdim=True)
    keep = mag > 1e-12 * total
    counts = keep.sum(1)
    sampled = torch.zeros(rel.shape[0], dtype=torch.bool)
    if max_roots is None or int(counts.max()) <= max_roots:
        pairs = keep.nonzero()
        return pairs, mag[pairs[:, 0], pairs[:, 1]], sampled
    parts, weights = [], []
    for b in range(rel.shape[0]):
        if int(counts[b]) <= max_roots:
            j = keep[b].nonzero()[:, 0]
            w = mag[b, j]
        else:
            sampled[b] = True
            p = torch.where(keep[b], mag[b], torch.zeros_like(mag[b])).double().cpu()
            j = torch.multinomial(p, max_roots, replacement=True, generator=gen).to(rel.device)
            w = (total[b] / max_roots).expand(max_roots)
        parts.append(torch.stack([torch.full_like(j, b), j], 1))
        weights.append(w)
    return torch.cat(parts), torch.cat(weights), sampled


def segment_pass(fw: ForwardPass, st: LayerSetup, pb: Tensor, pts: Tensor,
                 n_pts: int) -> Tuple[Tensor, Tensor, Dict[int, Tensor]]:
    """``F_l`` and its gradient at ``pts`` (P, n_pts, D), and the input of every
    watched switch at each root (row 0 of each pair)."""
    n_p = pts.shape[0]
    rows = pb.repeat_interleave(n_pts)
    tgt = None if fw.target is None else fw.target[pb.cpu()].repeat_interleave(n_pts)
    in_slot = fw.nodes[st.k].src[0]
    with torch.enable_grad():
        xp = pts.reshape(n_p * n_pts, *st.a.shape[1:]).requires_grad_(True)
        values = {s: fw.slots[s][rows] for s in st.live}
        values[in_slot] = xp
        values = run_tape(fw.nodes, values, st.start)
        f_pts = select_objective(values[fw.nodes[-1].dst], tgt, "output")
        (g_pts,) = torch.autograd.grad(f_pts.sum(), xp)
    at_root = {}
    for m in st.switches:
        z = values[fw.nodes[m].src[0]].detach()
        at_root[m] = z.reshape(n_p, n_pts, *z.shape[1:])[:, 0]
    return f_pts.detach().view(n_p, n_pts), g_pts.reshape(n_p, n_pts, -1), at_root


def root_flips(fw: ForwardPass, st: LayerSetup, owner: Dict[int, int], pb: Tensor,
               pj: Tensor, at_root: Dict[int, Tensor], n_layers: int) -> Tensor:
    """(P, L) number of flipped units per layer at each root."""
    n_p = pb.shape[0]
    dtype, device = st.a.dtype, st.a.device
    counts = torch.zeros(n_p, n_layers, dtype=dtype, device=device)
    for m in st.switches:
        sw = fw.nodes[m].op
        assert isinstance(sw, ActOp)
        state, scale = st.refs[m]
        flipped = sw.flipped(at_root[m], state[pb], scale[pb])
        if m == st.own:  # neuron j is 0 at its own root by construction
            flipped[torch.arange(n_p, device=device), pj] = False
        counts[:, owner[m]] += flipped.sum(-1).to(dtype)
    return counts


def root_dependence(st: LayerSetup, ab: Tensor, wj: Tensor, bj: Tensor, box: Box,
                    pb: Tensor, u: Tensor, h: Tensor, s: CheckSettings) -> Tensor:
    """Finite-difference ``||d r_j / d a||`` along each direction in ``u``, averaged."""
    dep = torch.zeros(ab.shape[0], dtype=ab.dtype, device=ab.device)
    for d in range(u.shape[0]):
        step = h[pb].unsqueeze(1) * u[d]
        r_plus, _ = st.rule.roots(ab + step, wj, bj, box, s.tiny, s.local)
        r_minus, _ = st.rule.roots(ab - step, wj, bj, box, s.tiny, s.local)
        dep += ((r_plus - r_minus) / (2 * h[pb]).unsqueeze(1)).norm(dim=1) / u.shape[0]
    return dep


class LayerTotals:
    """Per-sample sums over the checked roots of one layer."""

    NAMES = ("weight", "weight_ok", "valid", "flipped", "residual", "dependence")

    def __init__(self, batch: int, n_layers: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.acc = {n: torch.zeros(batch, dtype=dtype, device=device) for n in self.NAMES}
        self.count = torch.zeros(batch, dtype=dtype, device=device)
        self.domain = torch.zeros(batch, dtype=torch.long, device=device)
        self.flips = torch.zeros(batch, n_layers, dtype=dtype, device=device)

    def add(self, pb: Tensor, wts: Tensor, ok: Tensor, values: Dict[str, Tensor],
            bad: Tensor, flips: Tensor) -> None:
        ok_d = ok.to(wts.dtype)
        wgt = wts * ok_d
        self.acc["weight"].index_add_(0, pb, wts)
        self.acc["weight_ok"].index_add_(0, pb, wgt)
        for name in ("valid", "flipped", "residual", "dependence"):
            self.acc[name].index_add_(0, pb, wgt * values[name].to(wts.dtype))
        self.count.index_add_(0, pb, ok_d)
        self.domain.index_add_(0, pb, (bad & ok).long())
        self.flips.index_add_(0, pb, flips * ok_d.unsqueeze(1))

    def result(self, tiny: float) -> Dict[str, Tensor]:
        def share(v: Tensor, w: Tensor) -> Tensor:
            return torch.where(w > 0, v / w.clamp_min(tiny), torch.full_like(v, math.nan))

        acc, w_ok = self.acc, self.acc["weight_ok"]
        return {
            # Neurons with relevance but no root (w_j^T v_j = 0) count as invalid.
            "valid_share": share(acc["valid"], acc["weight"]).cpu(),
            "flipped_root_share": share(acc["flipped"], w_ok).cpu(),
            "taylor_residual": share(acc["residual"], w_ok).cpu(),
            "root_dependence": share(acc["dependence"], w_ok).cpu(),
            "n_roots": self.count.round().long().cpu(),
            "domain": self.domain.cpu(),
            "flips": torch.where(self.count.unsqueeze(1) > 0,
                                 self.flips / self.count.clamp_min(1).unsqueeze(1),
                                 torch.full_like(self.flips, math.nan)).cpu(),
        }


def check_layer(fw: ForwardPass, li: int, grad: Tensor, out_scale: Tensor,
                owner: Dict[int, int], s: CheckSettings) -> Dict[str, Tensor]:
    """Every (or every sampled) root of weight layer ``li``: validity, flips,
    domain, Taylor residual, root dependence; aggregated per sample."""
    st = _setup(fw, li, grad, owner, s)
    batch, dim = st.a_flat.shape
    dtype, device = st.a.dtype, st.a.device
    n_layers = len(fw.weight_ix)
    dom_tol = s.flip_tol * st.a_flat.abs().amax(1).clamp_min(s.tiny)
    h = s.fd_step * st.a_flat.abs().amax(1).clamp_min(1e-3)
    u = torch.randn(s.n_dir, dim, generator=s.gen, dtype=torch.float64).to(dtype=dtype,
                                                                          device=device)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(s.tiny)
    pairs, wts, sampled = select_pairs(st.rel, s.max_roots, s.sample_gen)
    totals = LayerTotals(batch, n_layers, dtype, device)
    # Row 0 of every pair is the root, rows 1..n the midpoints (k - 1/2) / n of
    # the open segment to a (the root itself may sit on a region boundary).
    n_pts = s.n_seg + 1
    s_grid = torch.cat([torch.zeros(1, dtype=dtype, device=device),
                        (torch.arange(s.n_seg, dtype=dtype, device=device) + 0.5) / s.n_seg])
    per_chunk = max(1, min(s.chunk_size, max(n_pts, POINT_ELEMENTS // max(dim, 1))) // n_pts)
    grad_scale = grad.abs().amax(1)
    for first in range(0, pairs.shape[0], per_chunk):
        pb, pj = pairs[first:first + per_chunk].unbind(1)
        ab = st.a_flat[pb]
        wj, bj = st.op.rows(st.a.shape[1:], pj), st.bias_units[pj]
        box = None if st.box is None else (st.box[0][pb], st.box[1][pb])
        r, ok = st.rule.roots(ab, wj, bj, box, s.tiny, s.local)
        pts = r.unsqueeze(1) + s_grid.view(1, -1, 1) * (ab - r).unsqueeze(1)
        f_pts, g_pts, at_root = segment_pass(fw, st, pb, pts, n_pts)
        # Valid: F_l keeps the gradient it has at a on the whole open segment.
        change = (g_pts[:, 1:] - grad[pb].unsqueeze(1)).abs().amax(-1)
        valid = ok & (change <= s.flip_tol * grad_scale[pb].unsqueeze(1) + s.tiny).all(1)
        flips = root_flips(fw, st, owner, pb, pj, at_root, n_layers)
        taylor = (fw.score.detach()[pb] - f_pts[:, 0]
                  - (grad[pb] * (ab - r)).sum(1)).abs() / out_scale[pb]
        bad = st.rule.out_of_domain(r, dom_tol[pb].unsqueeze(1), box)
        dep = root_dependence(st, ab, wj, bj, box, pb, u, h, s)
        totals.add(pb, wts[first:first + per_chunk], ok,
                   {"valid": valid, "flipped": flips.sum(1) > 0, "residual": taylor,
                    "dependence": dep}, bad, flips)
    out = totals.result(s.tiny)
    out["sampled"] = sampled
    return out
