"""The report of :meth:`DTDRootCheck.check`: thresholds, fields, verdicts, table.

Every field is documented on :class:`DTDReport` and in docs/dtd_root_check.md
("The report"); the verdict rule on :class:`DTDThresholds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Union

import torch
from torch import Tensor

__all__ = ["DTDThresholds", "DTDReport", "as_thresholds", "verdicts", "spearman"]


# --------------------------------------------------------------------------- thresholds


@dataclass
class DTDThresholds:
    """Thresholds behind the PASS / WARN / FAIL verdict (docs/dtd_root_check.md, "The report").

    A sample is **FAIL** if, in some layer, the relevance-weighted share of
    valid roots is below ``fail_valid_share``, or (with
    ``fail_on_domain_violation``) any root leaves the rule's input domain.
    It is **PASS** if every layer has a valid share of at least
    ``pass_valid_share``, every layer's Taylor residual is at most
    ``pass_residual`` and every layer's conservation gap is at most
    ``conservation_tol``. Otherwise it is **WARN**.

    Attributes:
        pass_valid_share (float): Default 0.99.
        fail_valid_share (float): Default 0.90.
        pass_residual (float): Default 1e-3.
        conservation_tol (float): Default 1e-3.
        fail_on_domain_violation (bool): Default True.
        gxi_cosine (float): The "equals gradient x input" flag is set when the
            cosine between the DTD map and gradient x input is at least this.
            Default 0.999999.
    """

    pass_valid_share: float = 0.99
    fail_valid_share: float = 0.90
    pass_residual: float = 1e-3
    conservation_tol: float = 1e-3
    fail_on_domain_violation: bool = True
    gxi_cosine: float = 0.999999


def as_thresholds(thresholds: Union[None, DTDThresholds, Dict[str, Any]]) -> DTDThresholds:
    if thresholds is None:
        return DTDThresholds()
    if isinstance(thresholds, DTDThresholds):
        return thresholds
    if isinstance(thresholds, dict):
        try:
            return replace(DTDThresholds(), **thresholds)
        except TypeError:
            names = ", ".join(DTDThresholds.__dataclass_fields__)
            raise ValueError(
                f"Unknown threshold in {sorted(thresholds)}; valid names: {names}."
            ) from None
    raise TypeError("`thresholds` must be None, a DTDThresholds or a dict of its fields.")


# --------------------------------------------------------------------------- the report


def _fmt(x: float, spec: str = ".3f") -> str:
    return "-" if x != x else format(x, spec)


def _nanmean(t: Tensor) -> float:
    keep = t[~torch.isnan(t)]
    return float(keep.mean()) if keep.numel() else float("nan")


def _nanmin(t: Tensor) -> float:
    keep = t[~torch.isnan(t)]
    return float(keep.min()) if keep.numel() else float("nan")


@dataclass
class DTDReport:
    """Per-sample, per-layer report of :meth:`DTDRootCheck.check`.

    ``B`` is the number of samples and ``L`` the number of weight layers
    (Linear/Conv2d, BatchNorm folded in), bottom (input side) first. Layer
    ``l`` maps its input activation ``a`` (the layer's input, after the ReLU
    and pooling below it) to pre-activations ``z = W a + b``. A *root* is
    computed for every neuron ``j`` of layer ``l`` whose relevance ``R_j`` is
    nonzero (``|R_j| > 1e-12 sum_j |R_j|``): ``r_j = a - t_j v_j`` with the
    rule's direction ``v_j`` and ``t_j = z_j / (w_j^T v_j)``, the point where
    the neuron's pre-activation (bias included) vanishes. "Relevance-weighted"
    means weighted by ``|R_j|``. ``F_l`` below is the explained output (the
    target logit) as a function of layer ``l``'s input, ``g_l = grad F_l(a)``.
    Layers without roots hold NaN.

    Attributes:
        rules (list[str]): The rule used at each layer.
        layers (list[str]): Layer names, e.g. ``"conv1: Conv2d(1->8, 3x3)"``.
        target (Tensor or None): (B,) explained class per sample.
        output (Tensor): (B,) explained output ``F(x)``, the relevance at the top.
        n_roots (Tensor): (B, L) number of roots computed (neurons with nonzero
            relevance, whose ``w_j^T v_j`` is nonzero).
        valid_share (Tensor): (B, L) relevance-weighted share of *valid* roots:
            the gradient of ``F_l`` equals ``g_l`` (within ``flip_tol``) at the
            ``n_segment_points`` midpoints ``r + s (a - r)``,
            ``s = (k - 1/2) / n``, of the open segment from the root to ``a``.
            Then ``F_l`` is linear on the segment (it is continuous), the
            condition of the Taylor step. The segment is sampled, so regions
            narrower than ``1/n`` of it can be missed. Neurons with relevance
            but no root (``w_j^T v_j = 0``) count as invalid.
        flipped_root_share (Tensor): (B, L) relevance-weighted share of roots at
            which at least one unit of layer ``l`` (other than ``j``, which is 0
            at its root by construction) or above is flipped: a ReLU whose
            pre-activation has strictly the other sign than at ``a`` (beyond
            the tolerance), or a max-pool whose argmax moved. A root outside
            the closure of ``a``'s activation region.
        flips_at_root (Tensor): (B, L, L) ``[b, l, m]``: mean number, over the
            roots of layer ``l``, of units in layer ``m >= l`` (its ReLU and
            max-pools) whose state at the root differs from the state at ``a``;
            NaN for ``m < l``.
        domain_violations (Tensor): (B, L) number of roots outside the rule's
            input domain: any negative coordinate for ``z+`` and ``gamma``
            (which assume non-negative inputs), any coordinate outside
            ``[low, high]`` for ``zbox``; always 0 for ``lrp0`` and ``w2``.
        taylor_residual (Tensor): (B, L) relevance-weighted mean over roots of
            ``|F_l(a) - F_l(r_j) - g_l^T (a - r_j)| / |F(x)|``: the error of a
            first-order expansion from the root, as a share of the output being
            explained; zero for every valid root.
        conservation_gap (Tensor): (B, L) ``|sum_i R_i - sum_j R_j| /
            |sum_j R_j|`` between the layer's input and output relevance.
        root_dependence (Tensor): (B, L) relevance-weighted mean of
            ``||(r_j(a + h u) - r_j(a - h u)) / (2h)||`` over ``n_directions``
            random unit directions ``u``: a finite-difference estimate of
            ``||d r_j / d a||`` along ``u``. 0 for locally constant roots (e.g.
            LRP-0 without biases: all roots at 0), about 1 for roots that move
            with ``a``. Sixt & Landgraf: input-dependent roots make DTD
            under-constrained.
        conservation_total (Tensor): (B,) ``|sum_i R_i(x) - F(x)| / |F(x)|``
            over the whole network.
        cosine_gxi (Tensor): (B,) cosine between the DTD map and
            gradient x input (of ``F`` at ``x``).
        rel_l1_gxi (Tensor): (B,) ``||R - g x||_1 / ||g x||_1``.
        spearman_gxi (Tensor): (B,) Spearman rank correlation of the two maps
            (average ranks for ties).
        equals_gxi (Tensor): (B,) bool, ``cosine_gxi >= thresholds.gxi_cosine``.
        verdict (list[str]): Per sample ``"PASS"``, ``"WARN"`` or ``"FAIL"``,
            see :class:`DTDThresholds`.
        thresholds (DTDThresholds): The thresholds used.
        n_segment_points (int): Segment midpoints checked per root.
        max_roots (int or None): The ``max_roots`` of the call: at most this
            many roots per sample and layer were checked (None: all).
        sampled (Tensor): (B, L) bool, True where the layer had more neurons
            with relevance than ``max_roots``, so ``max_roots`` of them were
            drawn with probability proportional to ``|R_j|`` (with replacement)
            and every relevance-weighted field is the plain mean over the draws,
            an unbiased estimate of the weighted mean over all roots;
            ``n_roots`` and ``domain_violations`` then count the draws.
    """

    rules: List[str]
    layers: List[str]
    target: Optional[Tensor]
    output: Tensor
    n_roots: Tensor
    valid_share: Tensor
    flipped_root_share: Tensor
    flips_at_root: Tensor
    domain_violations: Tensor
    taylor_residual: Tensor
    conservation_gap: Tensor
    root_dependence: Tensor
    conservation_total: Tensor
    cosine_gxi: Tensor
    rel_l1_gxi: Tensor
    spearman_gxi: Tensor
    equals_gxi: Tensor
    verdict: List[str]
    thresholds: DTDThresholds = field(default_factory=DTDThresholds)
    n_segment_points: int = 16
    max_roots: Optional[int] = None
    sampled: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.bool))

    @property
    def overall_verdict(self) -> str:
        """The worst verdict over the samples."""
        for v in ("FAIL", "WARN"):
            if v in self.verdict:
                return v
        return "PASS"

    def to_dict(self) -> Dict[str, Any]:
        """Plain Python lists, floats and strings (NaN kept as float NaN)."""
        out: Dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Tensor):
                value = value.detach().cpu().tolist()
            elif isinstance(value, DTDThresholds):
                value = asdict(value)
            out[name] = value
        out["overall_verdict"] = self.overall_verdict
        return out

    def summary(self, per_sample_layers: bool = False) -> str:
        """A readable table: one row per layer (means over samples, worst valid
        share), then one row per sample. ``per_sample_layers=True`` adds one row
        per sample and layer."""
        b, n_layers = self.valid_share.shape
        counts = {v: self.verdict.count(v) for v in ("PASS", "WARN", "FAIL")}
        lines = [
            f"DTDRootCheck report: {b} sample(s), {n_layers} layer(s), "
            f"{self.n_segment_points} segment points; verdict {self.overall_verdict} "
            f"(PASS {counts['PASS']}, WARN {counts['WARN']}, FAIL {counts['FAIL']})",
        ]
        if self.max_roots is not None and bool(self.sampled.any()):
            lines.append(
                f"roots sampled: at most {self.max_roots} per sample and layer, drawn with "
                "probability proportional to |R_j| where a layer has more (layers: "
                + ", ".join(str(li) for li in range(n_layers) if bool(self.sampled[:, li].any()))
                + ")")
        lines += ["", "per layer (mean over samples; valid: mean / worst)"]
        lines += self._layer_rows() + ["", "per sample"] + self._sample_rows()
        if per_sample_layers:
            lines += ["", "per sample and layer"] + self._sample_layer_rows()
        return "\n".join(lines)

    def _layer_rows(self) -> List[str]:
        width = max(len(name) for name in self.layers)
        head = (f"{'layer':<{width}}  {'rule':<5} {'roots':>6} {'valid':>13} {'flipped':>8} "
                f"{'domain':>7} {'residual':>9} {'conserv.':>9} {'root dep.':>9}")
        lines = [head, "-" * len(head)]
        for li, name in enumerate(self.layers):
            col = self.valid_share[:, li]
            valid = f"{_fmt(_nanmean(col))} / {_fmt(_nanmin(col))}"
            lines.append(
                f"{name:<{width}}  {self.rules[li]:<5} "
                f"{float(self.n_roots[:, li].double().mean()):>6.1f} {valid:>13} "
                f"{_fmt(_nanmean(self.flipped_root_share[:, li])):>8} "
                f"{int(self.domain_violations[:, li].sum()):>7d} "
                f"{_fmt(_nanmean(self.taylor_residual[:, li]), '.2e'):>9} "
                f"{_fmt(_nanmean(self.conservation_gap[:, li]), '.1e'):>9} "
                f"{_fmt(_nanmean(self.root_dependence[:, li])):>9}"
            )
        return lines

    def _sample_rows(self) -> List[str]:
        head = (f"{'sample':>6} {'target':>6} {'output':>9} {'verdict':>7} {'valid min':>9} "
                f"{'resid max':>9} {'domain':>6} {'cos gxi':>8} {'L1 gxi':>7} "
                f"{'rho gxi':>7} {'= gxi':>5}")
        lines = [head, "-" * len(head)]
        for i in range(self.valid_share.shape[0]):
            tgt = "-" if self.target is None else str(int(self.target[i]))
            lines.append(
                f"{i:>6} {tgt:>6} {float(self.output[i]):>9.4f} {self.verdict[i]:>7} "
                f"{_fmt(_nanmin(self.valid_share[i])):>9} "
                f"{_fmt(-_nanmin(-self.taylor_residual[i]), '.2e'):>9} "
                f"{int(self.domain_violations[i].sum()):>6d} "
                f"{float(self.cosine_gxi[i]):>8.4f} {float(self.rel_l1_gxi[i]):>7.3f} "
                f"{float(self.spearman_gxi[i]):>7.3f} "
                f"{'yes' if bool(self.equals_gxi[i]) else 'no':>5}"
            )
        return lines

    def _sample_layer_rows(self) -> List[str]:
        width = max(len(name) for name in self.layers)
        head = (f"{'sample':>6}  {'layer':<{width}} {'roots':>5} {'valid':>6} "
                f"{'flipped':>7} {'domain':>6} {'residual':>9} {'root dep.':>9}")
        lines = [head, "-" * len(head)]
        for i in range(self.valid_share.shape[0]):
            for li, name in enumerate(self.layers):
                lines.append(
                    f"{i:>6}  {name:<{width}} {int(self.n_roots[i, li]):>5d} "
                    f"{_fmt(float(self.valid_share[i, li])):>6} "
                    f"{_fmt(float(self.flipped_root_share[i, li])):>7} "
                    f"{int(self.domain_violations[i, li]):>6d} "
                    f"{_fmt(float(self.taylor_residual[i, li]), '.2e'):>9} "
                    f"{_fmt(float(self.root_dependence[i, li])):>9}")
        return lines

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------- helpers


def _average_ranks(x: Tensor) -> Tensor:
    """Ranks 0..F-1 along the last dim, ties given their average rank."""
    sorted_x, _ = torch.sort(x, dim=-1)
    low = torch.searchsorted(sorted_x, x.contiguous(), right=False)
    high = torch.searchsorted(sorted_x, x.contiguous(), right=True)
    return (low + high - 1).to(x.dtype) / 2


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation between rows of ``a`` and ``b`` (B, ...), over
    the flattened non-batch dims, with average ranks for ties. Rows with a
    constant map give 0.

    Examples::

        >>> import torch
        >>> spearman(torch.tensor([[1., 2., 3.]]), torch.tensor([[10., 20., 90.]]))
        tensor([1.])
    """
    ra = _average_ranks(a.reshape(a.shape[0], -1).double())
    rb = _average_ranks(b.reshape(b.shape[0], -1).double())
    ra = ra - ra.mean(-1, keepdim=True)
    rb = rb - rb.mean(-1, keepdim=True)
    den = ra.norm(dim=-1) * rb.norm(dim=-1)
    rho = (ra * rb).sum(-1) / torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, rho, torch.zeros_like(rho)).to(a.dtype)


def verdicts(report: DTDReport, th: DTDThresholds) -> List[str]:
    out = []
    for i in range(report.valid_share.shape[0]):
        valid = report.valid_share[i]
        valid = torch.where(torch.isnan(valid), torch.ones_like(valid), valid)
        resid = torch.nan_to_num(report.taylor_residual[i], nan=0.0)
        cons = torch.nan_to_num(report.conservation_gap[i], nan=0.0)
        dom = int(report.domain_violations[i].sum())
        if float(valid.min()) < th.fail_valid_share or (th.fail_on_domain_violation and dom):
            out.append("FAIL")
        elif (float(valid.min()) >= th.pass_valid_share and float(resid.max()) <= th.pass_residual
              and float(cons.max()) <= th.conservation_tol):
            out.append("PASS")
        else:
            out.append("WARN")
    return out

