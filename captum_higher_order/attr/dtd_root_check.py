"""DTDRootCheck: Deep Taylor Decomposition relevance with a root-point report.

Sixt & Landgraf (2022), "A Rigorous Study of the Deep Taylor Decomposition"
(TMLR), show that DTD's Taylor expansions are only exact when each neuron's
root point ``r_j`` lies in the linear region of the network above the layer
at the actual activation ``a``; that DTD with locally constant roots reduces to
gradient x (input - root); and that input-dependent roots can justify any
explanation. :class:`DTDRootCheck` computes train-free DTD relevance (LRP-0,
z+, w^2, z^B, gamma; Montavon et al. 2017) for ReLU networks and checks, per
sample and per layer, whether the roots behind it keep that promise.

The mathematics (DESIGN §6) and every report field are documented on
:class:`DTDReport`; the rule table is in :mod:`._dtd_layers`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor, nn

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    TargetType,
    TensorOrTuple,
    check_model_state,
    format_inputs,
    format_target,
    run_forward,
    select_objective,
)
from captum_higher_order.attr._dtd_layers import (
    DEFAULT_EPSILON,
    RULES,
    SUPPORTED_MODULES,
    ActOp,
    UnsupportedModuleError,
    WeightOp,
    box_bounds,
    check_rule,
    dense_weight,
    fold_batchnorm,
    parse_model,
    propagate_act,
    propagate_weight,
    roots,
    run_chain,
)

__all__ = [
    "DTDRootCheck",
    "DTDReport",
    "DTDThresholds",
    "UnsupportedModuleError",
    "fold_batchnorm",
    "spearman",
    "SUPPORTED_MODULES",
]


# --------------------------------------------------------------------------- thresholds


@dataclass
class DTDThresholds:
    """Thresholds behind the PASS / WARN / FAIL verdict (DESIGN §6).

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


def _as_thresholds(thresholds: Union[None, DTDThresholds, Dict[str, Any]]) -> DTDThresholds:
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
            "",
            "per layer (mean over samples; valid: mean / worst)",
        ]
        width = max(len(name) for name in self.layers)
        head = (f"{'layer':<{width}}  {'rule':<5} {'roots':>6} {'valid':>13} {'flipped':>8} "
                f"{'domain':>7} {'residual':>9} {'conserv.':>9} {'root dep.':>9}")
        lines += [head, "-" * len(head)]

        def nanmean(t: Tensor) -> float:
            keep = t[~torch.isnan(t)]
            return float(keep.mean()) if keep.numel() else float("nan")

        def nanmin(t: Tensor) -> float:
            keep = t[~torch.isnan(t)]
            return float(keep.min()) if keep.numel() else float("nan")

        for li, name in enumerate(self.layers):
            col = self.valid_share[:, li]
            valid = f"{_fmt(nanmean(col))} / {_fmt(nanmin(col))}"
            lines.append(
                f"{name:<{width}}  {self.rules[li]:<5} "
                f"{float(self.n_roots[:, li].double().mean()):>6.1f} {valid:>13} "
                f"{_fmt(nanmean(self.flipped_root_share[:, li])):>8} "
                f"{int(self.domain_violations[:, li].sum()):>7d} "
                f"{_fmt(nanmean(self.taylor_residual[:, li]), '.2e'):>9} "
                f"{_fmt(nanmean(self.conservation_gap[:, li]), '.1e'):>9} "
                f"{_fmt(nanmean(self.root_dependence[:, li])):>9}"
            )
        lines += ["", "per sample"]
        head = (f"{'sample':>6} {'target':>6} {'output':>9} {'verdict':>7} {'valid min':>9} "
                f"{'resid max':>9} {'domain':>6} {'cos gxi':>8} {'L1 gxi':>7} "
                f"{'rho gxi':>7} {'= gxi':>5}")
        lines += [head, "-" * len(head)]
        for i in range(b):
            tgt = "-" if self.target is None else str(int(self.target[i]))
            lines.append(
                f"{i:>6} {tgt:>6} {float(self.output[i]):>9.4f} {self.verdict[i]:>7} "
                f"{_fmt(nanmin(self.valid_share[i])):>9} "
                f"{_fmt(-nanmin(-self.taylor_residual[i]), '.2e'):>9} "
                f"{int(self.domain_violations[i].sum()):>6d} "
                f"{float(self.cosine_gxi[i]):>8.4f} {float(self.rel_l1_gxi[i]):>7.3f} "
                f"{float(self.spearman_gxi[i]):>7.3f} "
                f"{'yes' if bool(self.equals_gxi[i]) else 'no':>5}"
            )
        if per_sample_layers:
            lines += ["", "per sample and layer"]
            head = (f"{'sample':>6}  {'layer':<{width}} {'roots':>5} {'valid':>6} "
                    f"{'flipped':>7} {'domain':>6} {'residual':>9} {'root dep.':>9}")
            lines += [head, "-" * len(head)]
            for i in range(b):
                for li, name in enumerate(self.layers):
                    lines.append(
                        f"{i:>6}  {name:<{width}} {int(self.n_roots[i, li]):>5d} "
                        f"{_fmt(float(self.valid_share[i, li])):>6} "
                        f"{_fmt(float(self.flipped_root_share[i, li])):>7} "
                        f"{int(self.domain_violations[i, li]):>6d} "
                        f"{_fmt(float(self.taylor_residual[i, li]), '.2e'):>9} "
                        f"{_fmt(float(self.root_dependence[i, li])):>9}")
        return "\n".join(lines)

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


def _resolve_rules(rule: Union[str, Sequence[str]], n_layers: int) -> List[str]:
    if isinstance(rule, str):
        if rule == "zbox":
            # The z^B rule is for the box-bounded input; z+ above (Montavon 2017).
            return ["zbox"] + ["z+"] * (n_layers - 1)
        return [rule] * n_layers
    rules = list(rule)
    if len(rules) != n_layers:
        raise ValueError(
            f"`rule` lists {len(rules)} rules but the model has {n_layers} weight layers "
            "(Linear/Conv2d); pass one rule per weight layer, bottom first, or one name.")
    if "zbox" in rules[1:]:
        raise ValueError("The 'zbox' rule needs the input box; use it at the first layer only.")
    return rules


@dataclass
class _Forward:
    """Everything one forward and one relevance pass produce."""

    ops: List[Any]
    rules: List[str]
    weight_ix: List[int]
    x: Tensor
    acts: List[Tensor]
    out: Tensor
    score: Tensor
    target: Optional[Tensor]
    rel_out: Dict[int, Tensor]  # relevance at each op's output
    rel_in: Dict[int, Tensor]  # relevance at each op's input


# --------------------------------------------------------------------------- the method


class DTDRootCheck(Attribution):
    r"""Deep Taylor Decomposition relevance plus a root-point validity report.

    Train-free DTD (Montavon et al. 2017) explains neuron ``j`` of a ReLU layer
    by a first-order Taylor expansion at a root ``r_j = a - t_j v_j`` along a
    rule-specific direction ``v_j``, giving
    ``R_i = sum_j v_ij w_ij / (v_j^T w_j) R_j`` (table in
    :mod:`captum_higher_order.attr._dtd_layers`). Sixt & Landgraf (2022,
    TMLR, "A Rigorous Study of the Deep Taylor Decomposition") show the
    expansion is only justified when the root lies in the linear region of
    the network above ``a``, and that with locally constant, valid roots DTD is
    gradient x (input - root). :meth:`attribute` returns the relevance map;
    :meth:`check` returns a :class:`DTDReport` saying whether the roots keep
    that promise for this model and these inputs.

    The model must be a chain of Linear/Conv2d layers with ReLU, max/avg
    pooling and flatten (see :data:`SUPPORTED_MODULES`); BatchNorm directly
    after a weight layer is folded into it on a copy of the weights, so the
    model is never modified. Pooling layers pass relevance proportionally
    (winner-take-all for max pooling), as Captum's ``LRP`` does. Biases are
    left out of the relevance shares (train-free DTD; Captum's
    ``Alpha1_Beta0_Rule(set_bias_to_zero=True)``) but are part of the
    network, so they place the roots.

    Args:
        model (nn.Module): The network, in eval mode; one input tensor, output
            ``(B, C)`` or ``(B,)``.
        rule (str or list[str]): ``"lrp0"``, ``"z+"``, ``"w2"``, ``"zbox"`` or
            ``"gamma"`` for every weight layer (``"zbox"``: z^B at the first
            layer and z+ above), or one name per weight layer, bottom first.
            Default: ``"z+"``.
        rule_kwargs (dict, optional): ``{"gamma": 0.25}`` for ``"gamma"``;
            ``{"low": ..., "high": ...}`` (floats or tensors broadcastable to
            one input sample) for ``"zbox"``; ``"epsilon"`` sets the
            denominator stabiliser (default 1e-9, Captum's). Default: None.

    Raises:
        UnsupportedModuleError: (a ``TypeError``) when the model holds a module
            DTD cannot propagate through; the message lists what is supported.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum_higher_order.attr.dtd_root_check import DTDRootCheck
        >>> # Sixt & Landgraf (2022): is z+ DTD justified for this net and input?
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        >>> x = torch.rand(2, 4)
        >>> dtd = DTDRootCheck(net, rule="z+")
        >>> dtd.attribute(x, target=0).shape
        torch.Size([2, 4])
        >>> report = dtd.check(x, target=0, n_segment_points=8)
        >>> report.verdict[0] in ("PASS", "WARN", "FAIL")
        True
    """

    def __init__(
        self,
        model: nn.Module,
        rule: Union[str, Sequence[str]] = "z+",
        rule_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"DTDRootCheck needs an nn.Module (it reads the layers), got "
                f"{type(model).__name__}.")
        super().__init__(model)
        self.model = model
        kwargs = dict(rule_kwargs or {})
        names = [rule] if isinstance(rule, str) else list(rule)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError("`rule` must be a rule name or a list of rule names.")
        for name in names:
            if name not in RULES:
                raise ValueError(f"Unknown rule {name!r}; choose one of {', '.join(RULES)}.")
        allowed = {"epsilon"}
        for name in set(names):
            allowed |= {"gamma": {"gamma"}, "zbox": {"low", "high"}}.get(name, set())
        extra = set(kwargs) - allowed
        if extra:
            raise ValueError(
                f"rule_kwargs {sorted(extra)} do not apply to rule(s) {sorted(set(names))}; "
                f"accepted: {sorted(allowed)}.")
        if "zbox" in names:
            check_rule("zbox", {k: v for k, v in kwargs.items() if k in ("low", "high")})
        self.rule = rule
        self.rule_kwargs = kwargs
        self.epsilon = float(kwargs.get("epsilon", DEFAULT_EPSILON))
        parse_model(model)  # fail early on unsupported modules

    # ------------------------------------------------------------------ forward + relevance

    def _forward(self, inputs: TensorOrTuple, target: TargetType,
                 additional_forward_args: Any) -> Tuple[_Forward, Any]:
        fmt = format_inputs(inputs, additional_forward_args)
        if len(fmt.inputs) != 1:
            raise ValueError(
                f"DTDRootCheck explains a chain of layers with one input tensor; got a "
                f"tuple of {len(fmt.inputs)} inputs.")
        check_model_state(self.model)
        ops = parse_model(self.model)  # re-read: weights may have changed since __init__
        weight_ix = [k for k, op in enumerate(ops) if isinstance(op, WeightOp)]
        rules = _resolve_rules(self.rule, len(weight_ix))
        x = fmt.inputs[0]
        tgt = format_target(target, fmt.batch_size)
        with torch.no_grad():
            model_out = run_forward(self.model, fmt.inputs, fmt.additional_forward_args)
            out, acts = run_chain(ops, x)
        self._check_chain(model_out, out)
        score = select_objective(out, tgt, "output")
        if out.dim() == 2 and tgt is None:
            tgt = torch.zeros(fmt.batch_size, dtype=torch.long)  # C == 1
        if out.dim() == 1:
            top = score
        else:
            # select_objective has raised for (B, C>1) without a target.
            assert tgt is not None
            top = torch.zeros_like(out).scatter(
                1, tgt.to(out.device).view(-1, 1), score.view(-1, 1))
        rel_out: Dict[int, Tensor] = {}
        rel_in: Dict[int, Tensor] = {}
        relevance = top
        w_rank = len(weight_ix) - 1
        for k in range(len(ops) - 1, -1, -1):
            op = ops[k]
            rel_out[k] = relevance
            if isinstance(op, WeightOp):
                relevance = propagate_weight(op, rules[w_rank], self.rule_kwargs, acts[k],
                                             relevance, self.epsilon)
                w_rank -= 1
            else:
                relevance = propagate_act(op, acts[k], relevance, self.epsilon)
            rel_in[k] = relevance
        return _Forward(ops, rules, weight_ix, x, acts, out, score, tgt, rel_out, rel_in), fmt

    @staticmethod
    def _check_chain(model_out: Any, chain_out: Tensor) -> None:
        ok = isinstance(model_out, Tensor) and model_out.shape == chain_out.shape
        if ok:
            scale = 1.0 + float(model_out.detach().abs().max()) if model_out.numel() else 1.0
            tol = (1e-4 if chain_out.dtype in (torch.float32, torch.float16, torch.bfloat16)
                   else 1e-9) * scale
            ok = bool((model_out.detach() - chain_out).abs().max() <= tol)
        if not ok:
            raise ValueError(
                "The model's output differs from running its modules in registration "
                "order, so its forward is not a plain chain (functional ops other than a "
                "flatten, skip connections, reused modules, or extra arguments that change "
                "the output). Wrap the computation in an nn.Sequential of supported "
                f"modules: {SUPPORTED_MODULES}.")

    # ------------------------------------------------------------------ attribute

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> TensorOrTuple:
        """Train-free DTD relevance of the explained output, shaped like ``inputs``.

        The relevance at the top is the target output ``F(x)`` (Captum's LRP
        convention); it is passed down with the rule of each weight layer.

        Args:
            inputs (Tensor or tuple[Tensor]): ``(B, ...)`` inputs (one tensor).
            target (int, tuple, Tensor or list, optional): Output index per
                sample, any Captum form. Needed when the output has several
                columns. Default: None.
            additional_forward_args (Any, optional): Passed to the model after
                the inputs (the layer chain must not depend on them).
                Default: None.

        Returns:
            Tensor or tuple[Tensor]: Relevance with the structure of ``inputs``.

        Examples::

            >>> import torch
            >>> from torch import nn
            >>> net = nn.Sequential(nn.Linear(3, 5, bias=False), nn.ReLU(),
            ...                     nn.Linear(5, 1, bias=False)).eval()
            >>> x = torch.rand(4, 3)
            >>> rel = DTDRootCheck(net, rule="z+").attribute(x)
            >>> # z+ on a bias-free net conserves relevance (Montavon et al. 2017)
            >>> bool(torch.allclose(rel.sum(1), net(x)[:, 0], atol=1e-5))
            True
        """
        fw, fmt = self._forward(inputs, target, additional_forward_args)
        return fmt.format_like_inputs((fw.rel_in[0].detach(),))

    # ------------------------------------------------------------------ check

    def check(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_segment_points: int = 16,
        n_directions: int = 2,
        thresholds: Union[None, DTDThresholds, Dict[str, Any]] = None,
        flip_tol: Optional[float] = None,
        fd_step: Optional[float] = None,
        chunk_size: int = 4096,
        max_dense_elements: int = 2**24,
        seed: int = 0,
        root_support: str = "all",
    ) -> DTDReport:
        """Compute every root of every layer and report whether DTD holds.

        Roots are computed explicitly for each neuron with nonzero relevance,
        vectorised over samples and neurons (chunks of ``chunk_size`` points
        are sent through the network above the layer at once; the only Python
        loops are over layers and chunks). See :class:`DTDReport` for the
        fields and :class:`DTDThresholds` for the verdict.

        Args:
            inputs (Tensor or tuple[Tensor]): ``(B, ...)`` inputs (one tensor).
            target (int, tuple, Tensor or list, optional): As in
                :meth:`attribute`. Default: None.
            additional_forward_args (Any, optional): As in :meth:`attribute`.
            n_segment_points (int): Points of the open segment from each root to
                ``a`` where the gradient is compared with the gradient at ``a``
                (midpoints ``s = (k - 1/2) / n``). Default: 16.
            n_directions (int): Random directions for the finite-difference
                root dependence. Default: 2.
            thresholds (DTDThresholds or dict, optional): Verdict thresholds;
                a dict overrides single fields. Default: :class:`DTDThresholds`.
            flip_tol (float, optional): Relative tolerance: a unit counts as
                flipped when its pre-activation changes sign by more than
                ``flip_tol * max |z|`` of its layer, a root is outside the domain
                by more than ``flip_tol * max |a|``, and a gradient changed when
                it moves by more than ``flip_tol * max |g_l|``. Default:
                ``1000 * eps`` of the dtype.
            fd_step (float, optional): Relative finite-difference step
                (times ``max |a|``). Default: ``eps ** (1/3)`` of the dtype.
            chunk_size (int): Points per forward pass. Default: 4096.
            max_dense_elements (int): Limit on a conv layer's dense ``J x D``
                weight matrix (needed for per-neuron roots). Default: 2**24.
            seed (int): Seed of the random directions (the same directions are
                used for every sample). Default: 0.
            root_support (str): ``"all"`` (default) moves every coordinate the
                rule's direction ``v_j`` names, as in the DESIGN §6 table: zero
                weights count as ``w_ij >= 0``, so for a conv neuron the
                z+ / LRP-0 / gamma / z^B root also moves the inputs outside its
                receptive field (LRP-0's root of a bias-free layer is 0).
                ``"receptive_field"`` cuts ``v_j`` to the inputs the neuron
                sees (``w_ij != 0``), the other coordinates stay at ``a``. The
                relevance map is the same either way.

        Returns:
            DTDReport: The report; ``print(report.summary())``.

        Examples::

            >>> import torch
            >>> from torch import nn
            >>> net = nn.Sequential(nn.Linear(3, 5, bias=False), nn.ReLU(),
            ...                     nn.Linear(5, 2, bias=False)).double().eval()
            >>> x = torch.rand(2, 3, dtype=torch.float64)
            >>> report = DTDRootCheck(net, rule="lrp0").check(x, target=1)
            >>> # Sixt & Landgraf: zero roots, so LRP-0 is gradient x input here
            >>> bool(report.equals_gxi.all()), report.verdict
            (True, ['PASS', 'PASS'])
        """
        if n_segment_points < 1 or n_directions < 0 or chunk_size < 1:
            raise ValueError("n_segment_points and chunk_size must be >= 1, n_directions >= 0.")
        if root_support not in ("all", "receptive_field"):
            raise ValueError(
                f"root_support must be 'all' or 'receptive_field', got {root_support!r}.")
        th = _as_thresholds(thresholds)
        fw, _ = self._forward(inputs, target, additional_forward_args)
        x, dtype = fw.x, fw.x.dtype
        eps = torch.finfo(dtype).eps
        flip_tol = 1000 * eps if flip_tol is None else float(flip_tol)
        fd_step = eps ** (1 / 3) if fd_step is None else float(fd_step)
        batch = x.shape[0]
        n_layers = len(fw.weight_ix)
        tiny = torch.finfo(dtype).tiny ** 0.5

        grads = self._layer_gradients(fw)
        out_scale = fw.score.detach().abs().clamp_min(tiny)
        owner = self._switch_owners(fw)

        nan = float("nan")
        fields = {n: torch.full((batch, n_layers), nan, dtype=dtype) for n in (
            "valid_share", "flipped_root_share", "taylor_residual", "conservation_gap",
            "root_dependence")}
        n_roots = torch.zeros(batch, n_layers, dtype=torch.long)
        domain = torch.zeros(batch, n_layers, dtype=torch.long)
        flips = torch.full((batch, n_layers, n_layers), nan, dtype=dtype)
        gen = torch.Generator().manual_seed(int(seed))

        for li, k in enumerate(fw.weight_ix):
            res = self._check_layer(fw, li, k, grads[li], out_scale, owner, n_segment_points,
                                    n_directions, flip_tol, fd_step, chunk_size,
                                    max_dense_elements, gen, tiny,
                                    root_support == "receptive_field")
            for name in ("valid_share", "flipped_root_share", "taylor_residual",
                         "root_dependence"):
                fields[name][:, li] = res[name]
            n_roots[:, li] = res["n_roots"]
            domain[:, li] = res["domain"]
            flips[:, li, li:] = res["flips"][:, li:]
            r_in = fw.rel_in[k].reshape(batch, -1).sum(1)
            r_out = fw.rel_out[k].reshape(batch, -1).sum(1)
            fields["conservation_gap"][:, li] = ((r_in - r_out).abs()
                                                / r_out.abs().clamp_min(tiny)).cpu()

        rel = fw.rel_in[0].reshape(batch, -1)
        gxi = (self._input_gradient(fw) * x).reshape(batch, -1)
        den = rel.norm(dim=1) * gxi.norm(dim=1)
        cosine = torch.where(den > 0, (rel * gxi).sum(1) / den.clamp_min(tiny),
                             torch.zeros_like(den))
        rel_l1 = (rel - gxi).abs().sum(1) / gxi.abs().sum(1).clamp_min(tiny)
        rho = spearman(rel, gxi)
        total = (rel.sum(1) - fw.score).abs() / out_scale

        report = DTDReport(
            rules=list(fw.rules),
            layers=[fw.ops[k].describe() for k in fw.weight_ix],
            target=None if fw.target is None else fw.target.cpu(),
            output=fw.score.detach().cpu(),
            n_roots=n_roots,
            valid_share=fields["valid_share"],
            flipped_root_share=fields["flipped_root_share"],
            flips_at_root=flips,
            domain_violations=domain,
            taylor_residual=fields["taylor_residual"],
            conservation_gap=fields["conservation_gap"],
            root_dependence=fields["root_dependence"],
            conservation_total=total.detach().cpu(),
            cosine_gxi=cosine.detach().cpu(),
            rel_l1_gxi=rel_l1.detach().cpu(),
            spearman_gxi=rho.detach().cpu(),
            equals_gxi=(cosine.detach().cpu() >= th.gxi_cosine),
            verdict=[],
            thresholds=th,
            n_segment_points=n_segment_points,
        )
        report.verdict = _verdicts(report, th)
        return report

    # ------------------------------------------------------------------ check internals

    @staticmethod
    def _layer_gradients(fw: _Forward) -> List[Tensor]:
        """``g_l = d F / d a_l`` at every weight layer's input, (B, D_l) each."""
        with torch.enable_grad():
            x = fw.x.detach().requires_grad_(True)
            out, acts = run_chain(fw.ops, x)
            score = select_objective(out, fw.target, "output")
            ins = [acts[k] for k in fw.weight_ix]
            grads = torch.autograd.grad(score.sum(), ins, allow_unused=True)
        return [torch.zeros_like(a).reshape(a.shape[0], -1) if g is None
                else g.reshape(g.shape[0], -1) for a, g in zip(ins, grads)]

    @staticmethod
    def _input_gradient(fw: _Forward) -> Tensor:
        with torch.enable_grad():
            x = fw.x.detach().requires_grad_(True)
            out, _ = run_chain(fw.ops, x)
            (g,) = torch.autograd.grad(select_objective(out, fw.target, "output").sum(), x)
        return g

    @staticmethod
    def _switch_owners(fw: _Forward) -> Dict[int, int]:
        """Op index of every ReLU / max-pool -> the weight layer below it."""
        owner: Dict[int, int] = {}
        layer = -1
        for k, op in enumerate(fw.ops):
            if isinstance(op, WeightOp):
                layer += 1
            elif op.kind in ("relu", "maxpool") and layer >= 0:
                owner[k] = layer
        return owner

    def _check_layer(self, fw: _Forward, li: int, k: int, grad: Tensor, out_scale: Tensor,
                     owner: Dict[int, int], n_seg: int, n_dir: int, flip_tol: float,
                     fd_step: float, chunk_size: int, max_dense: int, gen: torch.Generator,
                     tiny: float, local: bool) -> Dict[str, Tensor]:
        """Every root of weight layer ``l`` (op ``k``): validity, flips, domain,
        Taylor residual, root dependence; aggregated per sample."""
        op: WeightOp = fw.ops[k]
        rule = fw.rules[li]
        a = fw.acts[k]
        batch, dtype, device = a.shape[0], a.dtype, a.device
        in_shape = a.shape[1:] if op.kind == "conv" else (a[0].numel(),)
        a_flat = a.reshape(batch, -1)
        dim = a_flat.shape[1]
        w_dense = dense_weight(op, tuple(in_shape), max_dense)
        with torch.no_grad():
            bias_units = op.apply(torch.zeros(1, *a.shape[1:], dtype=dtype, device=device))
        bias_units = bias_units.reshape(-1)
        rel = fw.rel_out[k].reshape(batch, -1)
        low: Optional[Tensor] = None
        high: Optional[Tensor] = None
        if rule == "zbox":
            box_lo, box_hi = box_bounds(self.rule_kwargs, a)
            low, high = box_lo.reshape(batch, -1), box_hi.reshape(batch, -1)

        # Reference state at a for every switch (ReLU, max-pool) at or above op k.
        switches = [m for m in sorted(owner) if m > k]
        refs: Dict[int, Tuple[Tensor, Tensor]] = {}
        for m in switches:
            z = fw.acts[m]
            scale = flip_tol * z.reshape(batch, -1).abs().amax(1).clamp_min(tiny)
            if fw.ops[m].kind == "relu":
                refs[m] = (z.reshape(batch, -1) > 0, scale)
            else:
                _, idx = torch.nn.functional.max_pool2d(z, return_indices=True,
                                                        **fw.ops[m].args)
                refs[m] = (idx.reshape(idx.shape[0], idx.shape[1], -1), scale)
        own = k + 1 if k + 1 < len(fw.ops) and isinstance(fw.ops[k + 1], ActOp) \
            and fw.ops[k + 1].kind == "relu" else None
        dom_tol = flip_tol * a_flat.abs().amax(1).clamp_min(tiny)
        h = fd_step * a_flat.abs().amax(1).clamp_min(1e-3)
        u = torch.randn(n_dir, dim, generator=gen, dtype=torch.float64).to(dtype=dtype,
                                                                          device=device)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(tiny)

        total = rel.abs().sum(1, keepdim=True)
        pairs = (rel.abs() > 1e-12 * total).nonzero()
        acc = {n: torch.zeros(batch, dtype=dtype, device=device) for n in (
            "weight", "weight_ok", "valid", "flipped", "residual", "dependence")}
        count = torch.zeros(batch, dtype=dtype, device=device)
        domain = torch.zeros(batch, dtype=torch.long, device=device)
        n_layers = len(fw.weight_ix)
        flip_counts = torch.zeros(batch, n_layers, dtype=dtype, device=device)
        # Row 0 of every pair is the root, rows 1..n the midpoints (k - 1/2) / n of
        # the open segment to a (the root itself may sit on a region boundary).
        n_pts = n_seg + 1
        s_grid = torch.cat([torch.zeros(1, dtype=dtype, device=device),
                            (torch.arange(n_seg, dtype=dtype, device=device) + 0.5) / n_seg])
        per_chunk = max(1, chunk_size // n_pts)
        grad_scale = grad.abs().amax(1)

        for start in range(0, pairs.shape[0], per_chunk):
            pb, pj = pairs[start:start + per_chunk].unbind(1)
            n_p = pb.shape[0]
            ab, wj, bj = a_flat[pb], w_dense[pj], bias_units[pj]
            lo = None if low is None else low[pb]
            hi = None if high is None else high[pb]
            r, ok = roots(rule, self.rule_kwargs, ab, wj, bj, lo, hi, tiny, local)
            pts = r.unsqueeze(1) + s_grid.view(1, -1, 1) * (ab - r).unsqueeze(1)
            tgt = None if fw.target is None else fw.target[pb.cpu()].repeat_interleave(n_pts)
            with torch.enable_grad():
                pts = pts.reshape(n_p * n_pts, *a.shape[1:]).requires_grad_(True)
                out, ins = run_chain(fw.ops, pts, start=k)
                f_pts = select_objective(out, tgt, "output")
                (g_pts,) = torch.autograd.grad(f_pts.sum(), pts)
            f_pts = f_pts.detach().view(n_p, n_pts)
            g_pts = g_pts.reshape(n_p, n_pts, -1)[:, 1:]
            # Valid: F_l keeps the gradient it has at a on the whole open segment.
            change = (g_pts - grad[pb].unsqueeze(1)).abs().amax(-1)
            same = change <= flip_tol * grad_scale[pb].unsqueeze(1) + tiny
            valid = ok & same.all(1)
            root_flip = torch.zeros(n_p, n_layers, dtype=dtype, device=device)
            for m in switches:
                z_root = ins[m - k].detach().reshape(n_p, n_pts, *ins[m - k].shape[1:])[:, 0]
                flipped = self._flips(fw.ops[m], z_root, refs[m], pb, n_p, 1)
                if m == own:
                    flipped[torch.arange(n_p, device=device), :, pj] = False
                root_flip[:, owner[m]] += flipped[:, 0].sum(-1).to(dtype)
            f_a = fw.score.detach()[pb]
            taylor = (f_a - f_pts[:, 0] - (grad[pb] * (ab - r)).sum(1)).abs() / out_scale[pb]
            if rule in ("z+", "gamma"):
                bad = (r < -dom_tol[pb].unsqueeze(1)).any(1)
            elif rule == "zbox":
                assert lo is not None and hi is not None  # set for rule == "zbox"
                t = dom_tol[pb].unsqueeze(1)
                bad = ((r < lo - t) | (r > hi + t)).any(1)
            else:
                bad = torch.zeros(n_p, dtype=torch.bool, device=device)
            dep = torch.zeros(n_p, dtype=dtype, device=device)
            for d in range(n_dir):
                step = h[pb].unsqueeze(1) * u[d]
                r_plus, _ = roots(rule, self.rule_kwargs, ab + step, wj, bj, lo, hi, tiny, local)
                r_minus, _ = roots(rule, self.rule_kwargs, ab - step, wj, bj, lo, hi, tiny,
                                   local)
                dep += ((r_plus - r_minus) / (2 * h[pb]).unsqueeze(1)).norm(dim=1) / n_dir
            wgt = rel[pb, pj].abs() * ok.to(dtype)
            ok_d = ok.to(dtype)
            acc["weight"].index_add_(0, pb, rel[pb, pj].abs())
            acc["weight_ok"].index_add_(0, pb, wgt)
            acc["valid"].index_add_(0, pb, wgt * valid.to(dtype))
            acc["flipped"].index_add_(0, pb, wgt * (root_flip.sum(1) > 0).to(dtype))
            acc["residual"].index_add_(0, pb, wgt * taylor)
            acc["dependence"].index_add_(0, pb, wgt * dep)
            count.index_add_(0, pb, ok_d)
            domain.index_add_(0, pb, (bad & ok).long())
            flip_counts.index_add_(0, pb, root_flip * ok_d.unsqueeze(1))

        weight = acc["weight"]

        def share(v: Tensor, w: Tensor) -> Tensor:
            return torch.where(w > 0, v / w.clamp_min(tiny), torch.full_like(v, math.nan))

        w_ok = acc["weight_ok"]
        return {
            # Neurons with relevance but no root (w_j^T v_j = 0) count as invalid.
            "valid_share": share(acc["valid"], weight).cpu(),
            "flipped_root_share": share(acc["flipped"], w_ok).cpu(),
            "taylor_residual": share(acc["residual"], w_ok).cpu(),
            "root_dependence": share(acc["dependence"], w_ok).cpu(),
            "n_roots": count.round().long().cpu(),
            "domain": domain.cpu(),
            "flips": torch.where(count.unsqueeze(1) > 0,
                                 flip_counts / count.clamp_min(1).unsqueeze(1),
                                 torch.full_like(flip_counts, math.nan)).cpu(),
        }

    @staticmethod
    def _flips(op: ActOp, z: Tensor, ref: Tuple[Tensor, Tensor], pb: Tensor, n_p: int,
               n_seg: int) -> Tensor:
        """(P, S, U) bool: the unit's state at each point strictly differs from
        its state at ``a`` (beyond the tolerance)."""
        state, scale = ref
        tol = scale[pb].view(n_p, 1, 1)
        if op.kind == "relu":
            zp = z.reshape(n_p, n_seg, -1)
            active = state[pb].unsqueeze(1)
            margin = torch.where(active, zp, -zp)
            return margin < -tol
        pooled = torch.nn.functional.max_pool2d(z, **op.args)
        flat = z.reshape(z.shape[0], z.shape[1], -1)
        idx = state[pb].repeat_interleave(n_seg, dim=0)
        at_ref = flat.gather(2, idx)
        margin = at_ref - pooled.reshape(at_ref.shape)
        return (margin < -tol.repeat_interleave(n_seg, 0).view(-1, 1, 1)).reshape(
            n_p, n_seg, -1)


def _verdicts(report: DTDReport, th: DTDThresholds) -> List[str]:
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
