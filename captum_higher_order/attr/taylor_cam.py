"""TaylorCAM: second-order Grad-CAM over pairs of image regions.

Lerman, Venuto, Kautz and Xu, "Explaining Local, Global, And Higher-Order
Interactions In Deep Learning", ICCV 2021 (arXiv:2006.08601), section
"Taylor-CAM". Grad-CAM (Selvaraju et al. 2017) weights the activation
``A[k, r]`` of a convolutional layer (channel ``k``, spatial cell ``r``) by the
spatially averaged gradient of the class score and so tells *which* region
matters. Taylor-CAM takes the next term of the Taylor expansion of the score
``y`` in the activation and tells which *pairs* of regions the decision rests
on together.

With ``H`` the Hessian of ``y`` with respect to the activation and ``1_s`` the
indicator of all channels of cell ``s``, the cross term of cells ``r`` and ``s``
is (docs/taylor_cam.md)::

    M[r, s] = sum_k A[k, r] * sum_l d^2 y / dA[k, r] dA[l, s]
            = sum_k A[k, r] * (H 1_s)[k, r]

and the pair score, symmetric, with the diagonal set to zero, is::

    P[r, s] = M[r, s]^2 + M[s, r]^2        (r != s),    P[r, r] = 0.

``y`` is the log-softmax of the target class by default, as in the authors'
experiments: for a ReLU network the logits are piecewise linear in ``A`` and
their Hessian is zero almost everywhere. Cells can be grouped into regions
``a, b`` (superpixels, object masks); then ``1_b`` is the indicator of all
channels of all cells of ``b`` and ``M[a, b] = sum_{r in a} sum_k A[k, r]
(H 1_b)[k, r]`` = ``sum_{r in a, s in b} M[r, s]``.

Every ``H 1_s`` comes from one batched forward-over-reverse call of the HVP
engine (:mod:`captum_higher_order.hessian`), vectorised over the cells or
regions. The activation is the real one: a forward hook records it once, then
the score is re-defined as a function of the activation, ``y(A)``, by running
the model with a forward hook that returns ``A`` in place of the layer's output.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_dense_size,
    check_forward,
    check_model_state,
    check_objective,
    find_module,
    format_inputs,
    format_target,
    run_forward,
    select_objective,
)
from captum_higher_order.attr._region_pairs import RegionPairs, pair_centers, top_region_pairs
from captum_higher_order.attr._taylor_cam_regions import region_groups
from captum_higher_order.attr._taylor_cam_tail import (
    Recording,
    budget_chunk,
    cell_vectors,
    tail_cross_terms,
    use_recorded_tail,
    weight_ptrs,
)
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES
from captum_higher_order.hessian.engine import (
    Engine,
    check_mode,
    make_problem,
    warn_if_zero_curvature,
)

__all__ = ["TaylorCAM", "RegionPairs", "top_region_pairs", "pair_centers"]


class TaylorCAM(LayerAttribution, GradientAttribution):
    r"""Second-order Grad-CAM: which pairs of regions a decision rests on together.

    Taylor-CAM (Lerman et al., ICCV 2021) extends Grad-CAM to the second-order
    term of the Taylor expansion of the target score ``y`` in the activation
    ``A`` of a convolutional layer. For cells (or regions) ``r, s`` of the
    layer's spatial grid, with ``H`` the Hessian of ``y`` with respect to ``A``
    and ``1_s`` the indicator of every channel of cell ``s``::

        M[r, s] = sum_k A[k, r] (H 1_s)[k, r]
        P[r, s] = M[r, s]^2 + M[s, r]^2   (r != s),   P[r, r] = 0

    :meth:`attribute` returns ``P`` with shape ``(B, R, R)``; :meth:`cross_terms`
    returns the signed ``M``. All ``R`` Hessian-vector products ``H 1_s`` of a
    batch come from one vectorised forward-over-reverse call (chunked only
    under a memory budget), so the cost is about one forward pass plus ``R``
    tangent passes through the layers *after* ``layer``.

    Used like Captum's :class:`~captum.attr.LayerGradCam`: same constructor,
    same ``inputs`` / ``target`` / ``additional_forward_args`` /
    ``attribute_to_layer_input``, and ``return_first_order=True`` also returns
    the Grad-CAM map, equal to ``LayerGradCam(forward_func, layer).attribute(
    inputs, target, attribute_to_layer_input=...)``.

    Args:
        forward_func (Callable): The model (an ``nn.Module`` in eval mode) or a
            function that calls it; returns ``(B,)`` or ``(B, C)``.
        layer (torch.nn.Module): The layer whose activation is explained, e.g.
            ``model.layer4`` of a ResNet. Its output (or input, with
            ``attribute_to_layer_input=True``) must be one tensor
            ``(B, C, *spatial)`` and the layer must run once per forward pass.
        device_ids (list[int], optional): Accepted for signature compatibility
            with Captum's layer methods. TaylorCAM runs the model on one
            device; ``DataParallel`` models are refused (pass ``model.module``).
            Default: None

    Examples::

        >>> # Lerman et al. 2021, Taylor-CAM: pairs of 8x8 cells of the
        >>> # second convolution of a small CNN.
        >>> import torch
        >>> from captum_higher_order.attr.taylor_cam import TaylorCAM, top_region_pairs
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(),
        ...     torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.GELU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        ...     torch.nn.Linear(8, 5)).eval()
        >>> cam = TaylorCAM(model, model[2])
        >>> x = torch.randn(2, 3, 16, 16)
        >>> pairs, grad_cam = cam.attribute(x, target=[1, 4], return_first_order=True)
        >>> pairs.shape, grad_cam.shape
        (torch.Size([2, 64, 64]), torch.Size([2, 1, 8, 8]))
        >>> top_region_pairs(pairs, k=3).index.shape
        torch.Size([2, 3, 2])
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"`layer` must be an nn.Module inside the model, got {type(layer).__name__}."
            )
        if isinstance(layer, torch.jit.ScriptModule):
            # TorchScript modules take no forward hooks, and TaylorCAM hooks the layer.
            raise TypeError(
                f"`layer` is a TorchScript module ({type(layer).__name__}), which takes no "
                "forward hooks: pass the eager (not scripted or traced) model and one of "
                "its layers."
            )
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)

    # ------------------------------------------------------------------ public

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "log_softmax",
        regions: Optional[Tensor] = None,
        attribute_to_layer_input: bool = False,
        return_first_order: bool = False,
        first_order_objective: str = "output",
        relu_attributions: bool = False,
        mode: str = "auto",
        chunk_size: Optional[int] = None,
        max_regions: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Taylor-CAM pair scores ``P[r, s] = M[r, s]^2 + M[s, r]^2``.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Model inputs, batch in dim 0.
            target (int, tuple, Tensor or list, optional): Captum target: the
                class per sample. With None, the class predicted at ``inputs``
                (used for the Grad-CAM map too). Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs, not differentiated. Default: None
            objective (str, optional): The score ``y`` whose Hessian is used:
                ``"log_softmax"`` (the authors' choice), ``"softmax"``,
                ``"cross_entropy"`` or ``"output"`` (the raw logit; its Hessian
                is zero for a ReLU network above ``layer``).
                Default: ``"log_softmax"``
            regions (Tensor, optional): Integer region ids grouping cells, over
                the layer's spatial grid ``(h, w)`` or over the input image
                ``(H, W)``; leading dims ``(1 or B,)`` or ``(1 or B, 1)`` allowed.
                A map at input resolution is resized to the grid by majority
                vote over each cell's share of pixels. Regions are ordered by id;
                the result is ``(B, R, R)``. Default: None (every cell is a
                region, in row-major order)
            attribute_to_layer_input (bool, optional): Use the layer's input
                instead of its output (a forward pre-hook). Default: False
            return_first_order (bool, optional): Also return the Grad-CAM map
                ``(B, 1, *grid)``. Default: False
            first_order_objective (str, optional): The score of the Grad-CAM
                map. ``"output"`` (the raw target logit) makes it equal
                Captum's ``LayerGradCam``; ``objective`` gives the first-order
                term of the same Taylor expansion. Default: ``"output"``
            relu_attributions (bool, optional): Apply ReLU to the Grad-CAM map,
                as ``LayerGradCam``'s flag of the same name. Default: False
            mode (str, optional): HVP mode of the engine: ``"auto"``,
                ``"fwd_rev"``, ``"rev_rev"`` or ``"ggn"``. Default: ``"auto"``
            chunk_size (int, optional): Cells (regions) per vectorised pass.
                None picks it from a memory budget. Default: None
            max_regions (int, optional): Largest ``R`` for which the dense
                ``R x R`` result is built. Default: 4096

        Returns:
            Tensor ``(B, R, R)``: symmetric, non-negative, zero diagonal; or the
            tuple ``(pairs, grad_cam)`` with ``return_first_order=True``.
        """
        cross, grad_cam = self._compute(
            inputs, target, additional_forward_args, objective, regions,
            attribute_to_layer_input, return_first_order, first_order_objective,
            mode, chunk_size, max_regions,
        )
        pairs = _pair_scores(cross)
        if not return_first_order:
            return pairs
        assert grad_cam is not None
        if relu_attributions:
            grad_cam = F.relu(grad_cam)
        return pairs, grad_cam

    def cross_terms(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "log_softmax",
        regions: Optional[Tensor] = None,
        attribute_to_layer_input: bool = False,
        mode: str = "auto",
        chunk_size: Optional[int] = None,
        max_regions: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Tensor:
        r"""The signed cross terms ``M[r, s] = sum_k A[k, r] (H 1_s)[k, r]``.

        ``M`` is not symmetric; :meth:`attribute` turns it into pair scores.
        Arguments as in :meth:`attribute`.

        Returns:
            Tensor: ``(B, R, R)``, row ``r`` (activation side), column ``s``
            (Hessian direction).
        """
        cross, _ = self._compute(
            inputs, target, additional_forward_args, objective, regions,
            attribute_to_layer_input, False, "output", mode, chunk_size, max_regions,
        )
        return cross

    # ------------------------------------------------------------------ steps

    def _compute(
        self,
        inputs: TensorOrTuple,
        target: TargetType,
        additional_forward_args: Any,
        objective: str,
        regions: Optional[Tensor],
        to_input: bool,
        first_order: bool,
        first_order_objective: str,
        mode: str,
        chunk_size: Optional[int],
        max_regions: int,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        self._check_single_device()
        check_objective(objective)
        check_objective(first_order_objective)
        check_mode(mode)
        check_model_state(self.forward_func)
        fmt = format_inputs(inputs, additional_forward_args)
        target_t = format_target(target, fmt.batch_size)

        rec = self._record(fmt, to_input)
        check_forward(self.forward_func, fmt, rec.output)
        target_t = _resolve_target(rec.output.detach(), target_t, objective)
        grad_cam = _grad_cam(rec, target_t, first_order_objective) if first_order else None
        input_grid = tuple(fmt.inputs[0].shape[2:]) if fmt.inputs[0].dim() > 2 else ()
        groups = _checked_groups(regions, rec.activation, input_grid, max_regions)
        if chunk_size is None:
            chunk_size = budget_chunk(rec.activation, rec.tail_bytes, groups.num_groups)
        cross = None
        if use_recorded_tail(rec, mode, groups.num_groups):
            cross = tail_cross_terms(rec, target_t, objective, groups, chunk_size)
        activation = rec.activation
        del rec  # frees the recorded graph before any pass through the whole network
        if cross is None:
            cross = self._batched_cross_terms(
                fmt, activation, target_t, objective, groups, to_input, mode, chunk_size
            )
        warn_if_zero_curvature(cross, objective)
        return cross, grad_cam

    def _check_single_device(self) -> None:
        module = find_module(self.forward_func)
        if self.device_ids is not None or isinstance(
            module, (nn.DataParallel, nn.parallel.DistributedDataParallel)
        ):
            raise ValueError(
                "TaylorCAM runs the model on one device: pass the wrapped module "
                "(model.module) and device_ids=None."
            )

    def _register(self, hook: Callable[[Tensor], Tensor], to_input: bool) -> Any:
        """Install ``hook`` so that it sees the layer's output (or single input)
        and its return value replaces it."""
        layer = self.layer
        if to_input:

            def pre_hook(module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Tensor, ...]:
                if len(args) != 1 or not isinstance(args[0], Tensor):
                    raise ValueError(
                        f"attribute_to_layer_input=True needs a layer called with "
                        f"one tensor; {type(module).__name__} got {len(args)} "
                        "positional arguments."
                    )
                return (hook(args[0]),)

            return layer.register_forward_pre_hook(pre_hook)

        def forward_hook(module: nn.Module, args: Any, output: Any) -> Tensor:
            if not isinstance(output, Tensor):
                raise ValueError(
                    f"TaylorCAM needs a layer whose output is one tensor; "
                    f"{type(module).__name__} returned {type(output).__name__}. "
                    "Pick a layer with a tensor output."
                )
            return hook(output)

        return layer.register_forward_hook(forward_hook)

    def _record(self, fmt: FormattedInputs, to_input: bool) -> Recording:
        """One forward pass that records the activation and builds the graph of
        the layers after ``layer`` only.

        The pass runs under ``no_grad``; the hook swaps in a leaf copy of the
        activation and switches gradients on, so autograd records (and the
        saved-tensor hook measures) just the tail of the network: that gives
        the Grad-CAM gradient with a tail-only backward and the memory one more
        HVP direction needs.
        """
        state: Dict[str, Any] = {"calls": 0, "trunk_flops": 0}
        saved = [0]
        flops = FlopCounterMode(display=False)
        weights = weight_ptrs(self.forward_func)

        def capture(value: Tensor) -> Tensor:
            state["calls"] += 1
            if state["calls"] > 1:
                return value
            state["trunk_flops"] = flops.get_total_flops()
            activation = value.detach().clone()
            leaf = activation.detach().requires_grad_(True)
            state["activation"], state["leaf"] = activation, leaf
            torch.set_grad_enabled(True)
            # A non-leaf copy, so an in-place op after the layer (ReLU(inplace))
            # neither fails on the leaf nor changes the recorded activation.
            return leaf.clone()

        def pack(t: Tensor) -> Tensor:
            # Weights are shared by every direction: only activations count.
            if not isinstance(t, nn.Parameter) and t.data_ptr() not in weights:
                saved[0] += t.numel() * t.element_size()
            return t

        grad_mode = torch.is_grad_enabled()
        handle = self._register(capture, to_input)
        try:
            with torch.no_grad(), torch.autograd.graph.saved_tensors_hooks(
                pack, _identity
            ), flops:
                output = run_forward(self.forward_func, fmt.inputs, fmt.additional_forward_args)
        finally:
            handle.remove()
            torch.set_grad_enabled(grad_mode)
        self._check_calls(state["calls"], to_input)
        activation = state["activation"]
        if activation.dim() < 3:
            raise ValueError(
                f"TaylorCAM needs a layer activation with spatial dims (B, C, h, w), "
                f"got shape {tuple(activation.shape)}; pick a convolutional layer."
            )
        if not activation.is_floating_point():
            raise TypeError(f"The layer activation has dtype {activation.dtype}; it must be float.")
        if not isinstance(output, Tensor):
            raise TypeError(
                f"The forward function must return a Tensor, got {type(output).__name__}."
            )
        trunk_flops = int(state["trunk_flops"])
        tail_flops = int(flops.get_total_flops()) - trunk_flops
        return Recording(activation, state["leaf"], output, saved[0], trunk_flops, tail_flops)

    def _check_calls(self, calls: int, to_input: bool) -> None:
        where = "input" if to_input else "output"
        if calls == 0:
            raise ValueError(
                f"The layer {type(self.layer).__name__} never ran in the forward "
                f"pass, so its {where} cannot be explained; pass a layer of this model."
            )
        if calls > 1:
            raise ValueError(
                f"The layer {type(self.layer).__name__} ran {calls} times in one "
                "forward pass (a shared module); TaylorCAM needs a layer that runs "
                "once. Wrap the use you want in its own module."
            )

    def _batched_cross_terms(
        self,
        fmt: FormattedInputs,
        activation: Tensor,
        target: Optional[Tensor],
        objective: str,
        groups: FeatureGroups,
        to_input: bool,
        mode: str,
        chunk_size: int,
    ) -> Tensor:
        """``M[b, a, s] = sum_{r in a} sum_k A[k, r] (H_b 1_s)[k, r]`` from one
        engine call vectorised over the indicators ``1_s``, through the whole
        network: the layers before ``layer`` run again (their output is then
        replaced by the recorded activation). Used for the forward-mode modes
        (``fwd_rev``, ``ggn``), reduced precision, and when the recorded tail
        has no double backward."""
        state: Dict[str, Any] = {"calls": 0}

        def replace(value: Tensor) -> Tensor:
            state["calls"] += 1
            # clone: a later in-place op must not write into the engine's input.
            return state["activation"].clone()

        def score_of_activation(a: Tensor) -> Tensor:
            # y(A): the model with the layer's value replaced by ``a``.
            state["activation"] = a
            return run_forward(self.forward_func, fmt.inputs, fmt.additional_forward_args)

        problem = make_problem(score_of_activation, activation, target, None, objective, mode,
                               check_output=False)
        make, reduce = cell_vectors(groups, activation)
        handle = self._register(replace, to_input)
        try:
            rows = Engine(problem, mode).apply(make, groups.num_groups, chunk_size, reduce)
        finally:
            handle.remove()
        return rows.permute(1, 2, 0)  # rows[s, b, a] -> M[b, a, s]


# --------------------------------------------------------------------------- helpers


def _identity(t: Tensor) -> Tensor:
    return t


def _resolve_target(output: Tensor, target: Optional[Tensor], objective: str) -> Optional[Tensor]:
    """Validate the output against target and objective (the shared error
    messages), then fix the class: the prediction at the clean input when
    ``target`` is None, so the second-order pass cannot change it."""
    select_objective(output, target, objective)
    if target is not None or output.dim() == 1:
        return target
    if output.shape[1] == 1:
        return torch.zeros(output.shape[0], dtype=torch.long)
    return output.argmax(dim=1).cpu()


def _grad_cam(rec: Recording, target: Optional[Tensor], objective: str) -> Tensor:
    """Grad-CAM exactly as Captum's ``LayerGradCam`` computes it: channel
    weights are the spatial mean of the gradient, the map their weighted sum
    of the activation channels (no ReLU)."""
    with torch.enable_grad():
        score = select_objective(rec.output, target, objective).sum()
        # retain_graph: the second-order products may reuse the recorded tail.
        (grad,) = torch.autograd.grad(score, rec.leaf, allow_unused=True, retain_graph=True)
    if grad is None:
        grad = torch.zeros_like(rec.activation)
    weights = torch.mean(grad, dim=tuple(range(2, grad.dim())), keepdim=True)
    return torch.sum(weights * rec.activation, dim=1, keepdim=True).detach()


def _pair_scores(cross: Tensor) -> Tensor:
    """``P = M^2 + (M^T)^2`` with a zero diagonal."""
    scores = cross.square() + cross.transpose(1, 2).square()
    return scores * (1 - torch.eye(scores.shape[1], dtype=scores.dtype, device=scores.device))


def _checked_groups(
    regions: Optional[Tensor], activation: Tensor, input_grid: Tuple[int, ...], max_regions: int
) -> FeatureGroups:
    groups = region_groups(regions, activation, input_grid)
    check_dense_size(groups.num_groups, max_regions, "TaylorCAM's pair map",
                     "max_regions", "`regions`")
    return groups
