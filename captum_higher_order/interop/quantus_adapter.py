"""A Quantus ``explain_func`` for the input-shaped methods.

Quantus (Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible
Evaluation of Neural Network Explanations and Beyond", JMLR 24(34), 2023)
scores an explanation method through a function
``explain_func(model, inputs, targets, **explain_func_kwargs) -> np.ndarray``
that takes numpy batches and returns attributions shaped like the inputs.
:func:`quantus_explain` is such a function for our methods whose result has
the shape of the input; the method is chosen by ``explain_func_kwargs``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from captum_higher_order.attr.dtd_root_check import DTDRootCheck
from captum_higher_order.attr.group_sparse_saliency import GroupSparseSaliency
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from captum_higher_order.attr.smooth_hess import SmoothHess

__all__ = ["quantus_explain", "QUANTUS_METHODS"]

#: Names accepted by ``method``: the input-shaped methods of the package.
QUANTUS_METHODS = ("SecondOrderSaliency", "GroupSparseSaliency", "SmoothGrad", "DTDRootCheck")


def _model_place(model: nn.Module) -> tuple:
    for p in model.parameters():
        return p.device, p.dtype if p.dtype.is_floating_point else torch.float32
    return torch.device("cpu"), torch.float32


def quantus_explain(
    model: nn.Module,
    inputs: Union[np.ndarray, Tensor],
    targets: Union[None, int, np.ndarray, Tensor, list] = None,
    method: str = "SecondOrderSaliency",
    init_kwargs: Optional[Dict[str, Any]] = None,
    device: Union[None, str, torch.device] = None,
    **attribute_kwargs: Any,
) -> np.ndarray:
    r"""Attributions of ``method`` for a Quantus metric, shaped like ``inputs``.

    Pass it as ``explain_func`` and the method as
    ``explain_func_kwargs={"method": ..., ...}`` to any Quantus metric.

    Args:
        model (nn.Module): The classifier Quantus hands over (eval mode is the
            caller's business: the model is used as it is).
        inputs (np.ndarray or Tensor): ``(B, ...)`` batch, moved to the device
            and dtype of the model's parameters.
        targets (int, array, Tensor or list, optional): The class per sample
            (Quantus passes ``y_batch``). None: the predicted class (except for
            ``DTDRootCheck``, which needs one for a multi-output model).
            Default: None
        method (str, optional): One of :data:`QUANTUS_METHODS`:
            ``"SecondOrderSaliency"`` and ``"GroupSparseSaliency"`` (Singla et
            al. 2019), ``"SmoothGrad"`` (the gradient average that
            ``SmoothHess.attribute(return_gradient=True)`` returns, Smilkov et
            al. 2017; the Hessian part is reduced to one group, so it costs
            nothing), ``"DTDRootCheck"`` (its DTD relevance).
            Default: ``"SecondOrderSaliency"``
        init_kwargs (dict, optional): Passed to the method's constructor, e.g.
            ``{"rule": "z+"}`` for ``DTDRootCheck``. Default: None
        device (str or torch.device, optional): Where to compute; Quantus
            passes its ``device`` here. None: the device of the model's
            parameters. Default: None
        **attribute_kwargs: Passed to the method's ``attribute``, e.g.
            ``lambda2=4.0``, or ``sigma=0.1, n_samples=64, generator=0`` for
            SmoothGrad.

    Returns:
        np.ndarray: float32 attributions with the shape of ``inputs``.

    Examples::

        >>> # Quantus scores a CASO map (Singla et al. 2019) of the digits CNN
        >>> import numpy as np
        >>> from captum_higher_order.interop import quantus_explain
        >>> from captum_higher_order.zoo import digits_samples, load_digits_cnn
        >>> model = load_digits_cnn()
        >>> images, labels = digits_samples()
        >>> a = quantus_explain(model, images[:2].numpy(), labels[:2].numpy(),
        ...                     method="SmoothGrad", sigma=0.1, n_samples=16, generator=0)
        >>> a.shape, a.dtype
        ((2, 1, 8, 8), dtype('float32'))
    """
    if method not in QUANTUS_METHODS:
        raise ValueError(
            f"Unknown method {method!r}; choose one of {', '.join(QUANTUS_METHODS)}."
        )
    if not isinstance(model, nn.Module):
        raise TypeError("quantus_explain needs a torch nn.Module (the model Quantus passes).")
    model_device, dtype = _model_place(model)
    device = torch.device(device) if device is not None else model_device
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs)
    x = x.detach().to(device=device, dtype=dtype)
    target: Any = targets
    if isinstance(targets, (np.ndarray, list)):
        target = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
    elif isinstance(targets, Tensor):
        target = targets.to(device=device, dtype=torch.long).reshape(-1)
    kwargs = dict(init_kwargs or {})
    if method == "SecondOrderSaliency":
        attr = SecondOrderSaliency(model, **kwargs).attribute(x, target=target, **attribute_kwargs)
    elif method == "GroupSparseSaliency":
        attr = GroupSparseSaliency(model, **kwargs).attribute(x, target=target, **attribute_kwargs)
    elif method == "SmoothGrad":
        attribute_kwargs.setdefault("feature_mask", torch.zeros_like(x[:1], dtype=torch.long))
        attribute_kwargs["return_gradient"] = True
        attr = SmoothHess(model, **kwargs).attribute(x, target=target, **attribute_kwargs)[1]
    else:
        attr = DTDRootCheck(model, **kwargs).attribute(x, target=target, **attribute_kwargs)
    if isinstance(attr, tuple):  # (attribution, delta) when a delta was asked for
        attr = attr[0]
    return attr.detach().to("cpu", torch.float32).numpy()
