"""Cascading model-randomisation sanity check (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (NeurIPS 2018), "Sanity
Checks for Saliency Maps": re-initialise a model's layers one after another,
from the top (output side) down, and compare each explanation with the
explanation of the trained model. A method whose maps barely change while the
network is destroyed explains the input, not the model. This works for any
Captum attribution, so DTD maps (:class:`DTDRootCheck`) can be compared with
gradient-based ones on the same footing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, cast

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import TargetType, TensorOrTuple, format_inputs
from captum_higher_order.attr.dtd_root_check import spearman

__all__ = ["cascading_randomization", "RandomizationResult"]


@dataclass
class RandomizationResult:
    """Result of :func:`cascading_randomization`.

    Attributes:
        layers (list[str]): Names of the re-initialised modules, in cascade order
            (top first); step ``l`` has ``layers[0..l]`` re-initialised.
        spearman (Tensor): (B, L) Spearman rank correlation, per sample, between
            the map at step ``l`` and the map of the original model (over all
            flattened input features).
        spearman_abs (Tensor): (B, L) the same for absolute values (Adebayo et
            al. report both; signs often flip under randomisation).
    """

    layers: List[str]
    spearman: Tensor
    spearman_abs: Tensor

    def to_dict(self) -> Dict[str, Any]:
        return {"layers": list(self.layers), "spearman": self.spearman.tolist(),
                "spearman_abs": self.spearman_abs.tolist()}

    def summary(self) -> str:
        """One row per cascade step: mean (min) rank correlation over samples."""
        width = max([len("randomised up to")] + [len(n) for n in self.layers])
        head = f"{'randomised up to':<{width}}  {'spearman':>17}  {'spearman |.|':>17}"
        lines = ["Cascading randomisation (Adebayo et al. 2018): mean (min) over "
                 f"{self.spearman.shape[0]} sample(s)", head, "-" * len(head)]
        for i, name in enumerate(self.layers):
            s, sa = self.spearman[:, i], self.spearman_abs[:, i]
            lines.append(f"{name:<{width}}  {float(s.mean()):>8.3f} ({float(s.min()):>6.3f})"
                         f"  {float(sa.mean()):>8.3f} ({float(sa.min()):>6.3f})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _default_layers(model: nn.Module) -> List[str]:
    """Modules holding parameters of their own, output side first (registration
    order reversed)."""
    names = [name for name, m in model.named_modules()
             if name and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def _reinitialise(module: nn.Module, seed: int) -> None:
    """``reset_parameters()`` (the layer's own initialisation) under a fixed
    seed, without touching the caller's random state; modules without it get
    Gaussian weights with the old standard deviation."""
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False)
                      if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters"):
            cast(Callable[[], object], module.reset_parameters)()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    std = float(p.std()) if p.numel() > 1 else 1.0
                    p.copy_(torch.randn_like(p) * std)


def _flat(attr: TensorOrTuple, batch: int) -> Tensor:
    parts = attr if isinstance(attr, tuple) else (attr,)
    return torch.cat([p.detach().reshape(batch, -1) for p in parts], dim=1)


def cascading_randomization(
    make_attribution: Callable[[nn.Module], Any],
    model: nn.Module,
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    attribute_kwargs: Optional[Dict[str, Any]] = None,
    layers: Optional[Sequence[str]] = None,
    seed: int = 0,
) -> RandomizationResult:
    """Cascading model-parameter randomisation test (Adebayo et al. 2018, §3.1).

    On a deep copy of ``model`` (the model itself is never modified), the
    modules in ``layers`` are re-initialised one after another, top first, and
    after each step the attribution is recomputed and rank-correlated with the
    attribution of the original model.

    Args:
        make_attribution (Callable[[nn.Module], Attribution]): Builds the
            attribution method for a model, e.g. ``Saliency``,
            ``lambda m: DTDRootCheck(m, rule="z+")`` or
            ``lambda m: LayerGradCam(m, m.conv2)`` (use the module of the model
            it receives).
        model (nn.Module): The trained model.
        inputs (Tensor or tuple[Tensor]): Inputs, batch in dim 0.
        target (int, tuple, Tensor or list, optional): Passed to ``attribute``.
        additional_forward_args (Any, optional): Passed to ``attribute``.
        attribute_kwargs (dict, optional): More keyword arguments for
            ``attribute`` (e.g. ``{"abs": False}`` for ``Saliency``).
        layers (list[str], optional): Module names to re-initialise, in cascade
            order. Default: every module with parameters of its own, output
            side first.
        seed (int): Step ``l`` re-initialises with seed ``seed + l``. Default: 0.

    Returns:
        RandomizationResult: Rank correlations per sample and step.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import Saliency
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        >>> res = cascading_randomization(Saliency, net, torch.rand(4, 6), target=0)
        >>> res.layers
        ['2', '0']
        >>> res.spearman.shape
        torch.Size([4, 2])
    """
    fmt = format_inputs(inputs, additional_forward_args)
    batch = fmt.batch_size
    kwargs = dict(attribute_kwargs or {})
    if additional_forward_args is not None:
        kwargs["additional_forward_args"] = additional_forward_args
    names = list(layers) if layers is not None else _default_layers(model)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"No module named {missing} in the model; valid names: "
                         f"{[n for n in modules if n]}.")
    if not names:
        raise ValueError("The model has no module with parameters to re-initialise.")

    def explain(m: nn.Module) -> Tensor:
        return _flat(make_attribution(m).attribute(inputs, target=target, **kwargs), batch)

    reference = explain(model)
    work = copy.deepcopy(model)
    work_modules = dict(work.named_modules())
    rho: List[Tensor] = []
    rho_abs: List[Tensor] = []
    for step, name in enumerate(names):
        _reinitialise(work_modules[name], seed + step)
        current = explain(work)
        rho.append(spearman(current, reference).cpu())
        rho_abs.append(spearman(current.abs(), reference.abs()).cpu())
    return RandomizationResult(names, torch.stack(rho, 1), torch.stack(rho_abs, 1))
