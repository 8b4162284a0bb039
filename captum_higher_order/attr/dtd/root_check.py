"""DTDRootCheck: Deep Taylor Decomposition relevance with a root-point report.

Sixt & Landgraf (2022), "A Rigorous Study of the Deep Taylor Decomposition"
(TMLR), show that DTD's Taylor expansions are only exact when each neuron's
root point ``r_j`` lies in the linear region of the network above the layer
at the actual activation ``a``; that DTD with locally constant roots reduces to
gradient x (input - root); and that input-dependent roots can justify any
explanation. :class:`DTDRootCheck` computes train-free DTD relevance (LRP-0,
z+, w^2, z^B, gamma; Montavon et al. 2017) for ReLU networks and checks, per
sample and per layer, whether the roots behind it keep that promise.

The mathematics and every report field are in docs/dtd_root_check.md and on
:class:`DTDReport`; the rules are the classes of :mod:`.rules`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor, nn

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_model_state,
    format_inputs,
    format_target,
    select_objective,
)
from captum_higher_order._numeric import HALF_DTYPES
from captum_higher_order.attr.dtd.check import CheckSettings, check_layer, switch_owners
from captum_higher_order.attr.dtd.ops import DEFAULT_EPSILON
from captum_higher_order.attr.dtd.parse import parse_model
from captum_higher_order.attr.dtd.relevance import (
    ForwardPass,
    input_gradient,
    layer_gradients,
    relevance_pass,
    top_relevance,
)
from captum_higher_order.attr.dtd.report import (
    DTDReport,
    DTDThresholds,
    as_thresholds,
    spearman,
    verdicts,
)
from captum_higher_order.attr.dtd.rules import make_rule, resolve_rules, validate_rule_kwargs
from captum_higher_order.attr.dtd.verify import verify_tape

__all__ = ["DTDRootCheck", "MAX_ROOTS"]


def _compute_input(model: nn.Module, x: Tensor) -> Tensor:
    """The input in the dtype DTD computes in (docs/dtd_root_check.md, "dtype"):
    the model's own dtype, float32 for float16 / bfloat16 (whose 1e-9
    stabiliser and root tolerances underflow). Inputs and model must agree."""
    if not x.is_floating_point():
        raise TypeError(f"DTDRootCheck needs floating-point inputs, got {x.dtype}.")
    params = [p for p in model.parameters() if p.is_floating_point()]
    if params and params[0].dtype != x.dtype:
        raise ValueError(
            f"The inputs are {x.dtype} but the model's parameters are {params[0].dtype}; "
            f"cast one of them (e.g. inputs.to({params[0].dtype})).")
    return x.detach().float() if x.dtype in HALF_DTYPES else x.detach()

#: Default ``max_roots`` of :meth:`DTDRootCheck.check`: layers with at most this
#: many neurons with relevance per sample are checked exhaustively.
MAX_ROOTS = 4096


class DTDRootCheck(Attribution):
    r"""Deep Taylor Decomposition relevance plus a root-point validity report.

    Train-free DTD (Montavon et al. 2017) explains neuron ``j`` of a ReLU layer
    by a first-order Taylor expansion at a root ``r_j = a - t_j v_j`` along a
    rule-specific direction ``v_j``, giving
    ``R_i = sum_j v_ij w_ij / (v_j^T w_j) R_j`` (table in
    :mod:`captum_higher_order.attr.dtd.rules`). Sixt & Landgraf (2022,
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
        validate_rule_kwargs(names, kwargs)
        for name in set(names):
            make_rule(name, kwargs)  # each rule checks the kwargs it needs
        self.rule = rule
        self.rule_kwargs = kwargs
        self.epsilon = float(kwargs.get("epsilon", DEFAULT_EPSILON))
        parse_model(model)  # fail early on unsupported modules

    # ------------------------------------------------------------------ forward + relevance

    def _forward(self, inputs: TensorOrTuple, target: TargetType,
                 additional_forward_args: Any) -> Tuple[ForwardPass, FormattedInputs]:
        fmt = format_inputs(inputs, additional_forward_args)
        if len(fmt.inputs) != 1:
            raise ValueError(
                f"DTDRootCheck explains a chain of layers with one input tensor; got a "
                f"tuple of {len(fmt.inputs)} inputs.")
        check_model_state(self.model)
        tape = parse_model(self.model)  # re-read: weights may have changed since __init__
        rules = resolve_rules(self.rule, self.rule_kwargs, len(tape.weight_ix))
        x = _compute_input(self.model, fmt.inputs[0])
        tape.to(x.dtype)
        tgt = format_target(target, fmt.batch_size)
        # The chain is verified module by module before any relevance is computed.
        _, slots = verify_tape(self.model, tape, fmt.inputs, fmt.additional_forward_args, x)
        out = slots[tape.nodes[-1].dst]
        score = select_objective(out, tgt, "output")
        if out.dim() == 2 and tgt is None:
            tgt = torch.zeros(fmt.batch_size, dtype=torch.long)  # C == 1
        with torch.no_grad():
            rel = relevance_pass(tape.nodes, rules, slots, top_relevance(out, score, tgt),
                                 self.epsilon)
        fw = ForwardPass(tape.nodes, rules, tape.weight_ix, x, slots, out, score, tgt,
                         rel["rel_out"], rel["rel_in"], rel["input"][0])
        return fw, fmt

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
        rel = fw.input_relevance.detach().to(fmt.inputs[0].dtype)
        return fmt.format_like_inputs((rel,))

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
        max_dense_elements: Optional[int] = None,
        seed: int = 0,
        root_support: str = "all",
        max_roots: Optional[int] = MAX_ROOTS,
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
            chunk_size (int): Points per forward pass, at most; fewer when a
                layer input is large, so that a pass holds at most
                ``2**22`` input numbers (:data:`.check.POINT_ELEMENTS`).
                Default: 4096.
            max_dense_elements (int, optional): Ignored, kept for old calls: a
                conv neuron's weight row is now built from its receptive field,
                no dense ``J x D`` matrix is formed. Default: None.
            seed (int): Seed of the random directions (the same directions are
                used for every sample). Default: 0.
            root_support (str): ``"all"`` (default) moves every coordinate the
                rule's direction ``v_j`` names, as in the rule table of
                docs/dtd_root_check.md: zero weights count as ``w_ij >= 0``, so
                for a conv neuron the
                z+ / LRP-0 / gamma / z^B root also moves the inputs outside its
                receptive field (LRP-0's root of a bias-free layer is 0).
                ``"receptive_field"`` cuts ``v_j`` to the inputs the neuron
                sees (``w_ij != 0``), the other coordinates stay at ``a``. The
                relevance map is the same either way.
            max_roots (int, optional): Roots checked per sample and layer, at
                most. A layer with more neurons with relevance is *sampled*:
                ``max_roots`` neurons drawn with probability ``|R_j| / sum |R|``
                (with replacement, seeded by ``seed``), so the weighted shares
                become plain means over the draws (unbiased; standard error at
                most ``0.5 / sqrt(max_roots)`` for a share). The report says
                where (``report.sampled``). None: every root. Default: 4096,
                exhaustive for small networks; image-sized networks (ResNet,
                VGG at 64x64) need a few dozen to finish in seconds to minutes.

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
        th = as_thresholds(thresholds)
        if n_segment_points < 1 or n_directions < 0 or chunk_size < 1:
            raise ValueError("n_segment_points and chunk_size must be >= 1, n_directions >= 0.")
        if root_support not in ("all", "receptive_field"):
            raise ValueError(
                f"root_support must be 'all' or 'receptive_field', got {root_support!r}.")
        if max_roots is not None and (isinstance(max_roots, bool) or int(max_roots) < 1):
            raise ValueError(f"max_roots must be None (all roots) or >= 1, got {max_roots!r}.")
        fw, _ = self._forward(inputs, target, additional_forward_args)
        eps = torch.finfo(fw.x.dtype).eps
        settings = CheckSettings(
            n_seg=n_segment_points, n_dir=n_directions,
            flip_tol=1000 * eps if flip_tol is None else float(flip_tol),
            fd_step=eps ** (1 / 3) if fd_step is None else float(fd_step),
            chunk_size=chunk_size, local=root_support == "receptive_field",
            tiny=torch.finfo(fw.x.dtype).tiny ** 0.5,
            max_roots=None if max_roots is None else int(max_roots),
            gen=torch.Generator().manual_seed(int(seed)),
            sample_gen=torch.Generator().manual_seed(int(seed) + 1))
        fields = self._check_layers(fw, settings)
        report = self._assemble(fw, fields, settings, th, n_segment_points)
        report.verdict = verdicts(report, th)
        return report

    # ------------------------------------------------------------------ check internals

    @staticmethod
    def _check_layers(fw: ForwardPass, s: CheckSettings) -> Dict[str, Tensor]:
        """Per-layer fields of the report, (B, L) each (flips: (B, L, L))."""
        batch, dtype = fw.x.shape[0], fw.x.dtype
        n_layers = len(fw.weight_ix)
        nan = float("nan")
        fields = {n: torch.full((batch, n_layers), nan, dtype=dtype) for n in (
            "valid_share", "flipped_root_share", "taylor_residual", "conservation_gap",
            "root_dependence")}
        fields["n_roots"] = torch.zeros(batch, n_layers, dtype=torch.long)
        fields["domain"] = torch.zeros(batch, n_layers, dtype=torch.long)
        fields["sampled"] = torch.zeros(batch, n_layers, dtype=torch.bool)
        fields["flips"] = torch.full((batch, n_layers, n_layers), nan, dtype=dtype)
        grads = layer_gradients(fw)
        out_scale = fw.score.detach().abs().clamp_min(s.tiny)
        owner = switch_owners(fw)
        for li, k in enumerate(fw.weight_ix):
            res = check_layer(fw, li, grads[li], out_scale, owner, s)
            for name in ("valid_share", "flipped_root_share", "taylor_residual",
                         "root_dependence", "n_roots", "domain", "sampled"):
                fields[name][:, li] = res[name]
            fields["flips"][:, li, li:] = res["flips"][:, li:]
            r_in = fw.rel_in[k].reshape(batch, -1).sum(1)
            r_out = fw.rel_out[k].reshape(batch, -1).sum(1)
            fields["conservation_gap"][:, li] = ((r_in - r_out).abs()
                                                / r_out.abs().clamp_min(s.tiny)).cpu()
        return fields

    @staticmethod
    def _assemble(fw: ForwardPass, fields: Dict[str, Tensor], s: CheckSettings,
                  th: DTDThresholds, n_segment_points: int) -> DTDReport:
        """The report: per-layer fields plus the comparison with gradient x input."""
        batch = fw.x.shape[0]
        rel = fw.input_relevance.reshape(batch, -1)
        gxi = (input_gradient(fw) * fw.x).reshape(batch, -1)
        den = rel.norm(dim=1) * gxi.norm(dim=1)
        cosine = torch.where(den > 0, (rel * gxi).sum(1) / den.clamp_min(s.tiny),
                             torch.zeros_like(den)).detach().cpu()
        rel_l1 = (rel - gxi).abs().sum(1) / gxi.abs().sum(1).clamp_min(s.tiny)
        total = (rel.sum(1) - fw.score).abs() / fw.score.detach().abs().clamp_min(s.tiny)
        return DTDReport(
            rules=[r.name for r in fw.rules],
            layers=[fw.nodes[k].op.describe() for k in fw.weight_ix],  # type: ignore[union-attr]
            target=None if fw.target is None else fw.target.cpu(),
            output=fw.score.detach().cpu(),
            n_roots=fields["n_roots"],
            valid_share=fields["valid_share"],
            flipped_root_share=fields["flipped_root_share"],
            flips_at_root=fields["flips"],
            domain_violations=fields["domain"],
            taylor_residual=fields["taylor_residual"],
            conservation_gap=fields["conservation_gap"],
            root_dependence=fields["root_dependence"],
            conservation_total=total.detach().cpu(),
            cosine_gxi=cosine,
            rel_l1_gxi=rel_l1.detach().cpu(),
            spearman_gxi=spearman(rel, gxi).detach().cpu(),
            equals_gxi=cosine >= th.gxi_cosine,
            verdict=[],
            thresholds=th,
            n_segment_points=n_segment_points,
            max_roots=s.max_roots,
            sampled=fields["sampled"],
        )
