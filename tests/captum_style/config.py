"""Generated-test configuration in Captum's format (``tests/attr/helpers/test_config.py``).

Each entry of :func:`config` describes one call; the consumers
(``test_targets.py``, ``test_hook_removal.py``, ``test_jit.py``,
``test_data_parallel.py``) run every algorithm of every entry in two ways and
compare. The schema is Captum's:

* ``name``: the entry's name (part of every generated test id);
* ``algorithms``: the attribution classes that apply to the entry;
* ``model``: the ``nn.Module`` (built in the entry's dtype);
* ``attribute_args``: keyword arguments of ``attribute`` (of
  ``NoiseTunnel.attribute`` when ``noise_tunnel``);
* ``layer``: attribute path of the layer, for layer methods (TaylorCAM);
* ``noise_tunnel``: wrap the algorithm in Captum's ``NoiseTunnel``;
* ``baseline_distr``: ``baselines`` is a reference distribution (kept whole
  for per-sample calls) rather than one baseline per example;
* ``target_delta`` / ``dp_delta``: tolerances of test_targets and
  test_data_parallel, relative to the largest attribution, per dtype.

Additions, because these methods need per-method settings, some calls are
refused by design, and a comparison of two all-zero results proves nothing:

* ``all_zero``: the attributions are zero by construction (up to rounding);
  the consumers check that, and otherwise require a nonzero result;
* ``ALGORITHM_ARGS``: small per-algorithm settings (few samples, steps or
  fixed seeds) merged into every entry's arguments, keeping the suite fast;
* ``refusals``: ``{algorithm: Refusal}``: the call must raise ``error`` with
  a message matching ``match``; ``xfail`` marks refusals another branch is
  still making (the consumer then accepts either outcome).

Targets: Captum's forms (int, list, 1-element and per-sample tensors, list of
tuples) plus None. Tuple targets into a multi-dimensional output are refused
by every method (they explain ``(B,)`` or ``(B, C)`` outputs).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

import torch

from captum_higher_order import (
    CrossDerivatives,
    DTDRootCheck,
    ExpectedHessians,
    GroupSparseSaliency,
    IntegratedHessians,
    SecondOrderSaliency,
    SmoothHess,
    TaylorCAM,
)
from tests.captum_style.models import ConvNet, MultiInput, MultiLayer, build, captum_weights

DTYPES = (torch.float64, torch.float32)


class Refusal(NamedTuple):
    error: type
    match: str
    xfail: Optional[str] = None


#: Per-algorithm settings merged into ``attribute_args`` (entry values win).
ALGORITHM_ARGS: Dict[type, Dict[str, Any]] = {
    GroupSparseSaliency: {"lambda1": 0.01},
    SmoothHess: {"generator": 0, "n_samples": 16, "sigma": 0.3},
    IntegratedHessians: {"n_steps": 4},
    ExpectedHessians: {"n_steps": 4, "seed": 0},
}

#: Default tolerances (relative to the largest attribution) per dtype.
TARGET_DELTA = {torch.float64: 1e-7, torch.float32: 2e-4}
DP_DELTA = {torch.float64: 1e-7, torch.float32: 2e-4}

ALL_DENSE = [SecondOrderSaliency, GroupSparseSaliency, SmoothHess, CrossDerivatives,
             IntegratedHessians]
CURVATURE = [SmoothHess, CrossDerivatives, IntegratedHessians]
TUPLE_TARGET = Refusal(TypeError, "must be ints or 1-tuples of ints")
NEEDS_TARGET = Refusal(ValueError, "pass `target`")
NOT_A_CHAIN = Refusal(ValueError, "not a plain chain", xfail="dtd branch")


def config(dtype: torch.dtype) -> List[Dict[str, Any]]:
    """Every entry, with models and inputs built in ``dtype`` (seeded)."""
    torch.manual_seed(1234)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype)

    def mlp(act: str = "tanh", alt: bool = True) -> torch.nn.Module:
        return build(MultiLayer, dtype, act=act, alt=alt)

    def multi_input() -> torch.nn.Module:
        return build(MultiInput, dtype, act="tanh")

    def conv(act: str = "softplus") -> torch.nn.Module:
        return build(ConvNet, dtype, act=act)

    tuple_targets = [(1, 0, 0), (0, 1, 1), (1, 1, 1), (0, 0, 0)]
    return [
        # Primary configs (Captum's names), curved MultiLayer.
        {"name": "basic_single_target", "algorithms": ALL_DENSE, "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": 1}},
        {"name": "basic_multi_input", "algorithms": ALL_DENSE, "model": multi_input(),
         "attribute_args": {"inputs": (randn(6, 3), randn(6, 3)),
                            "additional_forward_args": (randn(6, 3), 2), "target": 0}},
        {"name": "basic_multi_target", "algorithms": ALL_DENSE,
         "model": mlp(), "attribute_args": {"inputs": randn(4, 3), "target": [0, 1, 1, 0]}},
        {"name": "basic_multi_input_multi_target", "algorithms": ALL_DENSE,
         "model": multi_input(),
         "attribute_args": {"inputs": (randn(6, 3), randn(6, 3)),
                            "additional_forward_args": (randn(6, 3), 2),
                            "target": [0, 1, 1, 0, 0, 1]}},
        {"name": "basic_multiple_tuple_target", "algorithms": ALL_DENSE,
         "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": tuple_targets,
                            "additional_forward_args": (None, True)},
         "refusals": {a: TUPLE_TARGET for a in ALL_DENSE}},
        {"name": "basic_tensor_single_target", "algorithms": ALL_DENSE, "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": torch.tensor([0])}},
        {"name": "basic_tensor_multi_target", "algorithms": ALL_DENSE, "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": torch.tensor([1, 1, 0, 0])}},
        # None: the predicted class for the loss-based saliencies; the output
        # methods need to be told which of the two columns to explain.
        {"name": "basic_none_target", "algorithms": ALL_DENSE, "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": None},
         "refusals": {a: NEEDS_TARGET for a in CURVATURE}},
        # Captum's own weights: the two logits differ by a constant, so the
        # cross-entropy gradient and Hessian are exactly zero; the maps are
        # zero and the convergence deltas finite (issue 19, bug 2 in float32).
        {"name": "captum_weights_zero_gradient",
         "algorithms": [SecondOrderSaliency, GroupSparseSaliency],
         "model": captum_weights(build(MultiLayer, dtype, act="relu")), "all_zero": True,
         "attribute_args": {"inputs": randn(4, 3), "target": [0, 1, 1, 0]}},
        # Piecewise-linear (Captum's ReLU) model: curvature from the softmax.
        {"name": "relu_multi_target_log_softmax", "algorithms": ALL_DENSE,
         "model": mlp("relu"),
         "attribute_args": {"inputs": randn(4, 3), "target": [1, 0, 0, 1],
                            "objective": "log_softmax"}},
        # Baselines (per example) and internal batching.
        {"name": "basic_multi_target_with_baselines", "algorithms": [IntegratedHessians],
         "model": mlp("softplus"),
         "attribute_args": {"inputs": randn(4, 3), "baselines": 0.5 * randn(4, 3),
                            "target": [0, 1, 1, 0]}},
        {"name": "basic_multi_input_with_baselines", "algorithms": [IntegratedHessians],
         "model": multi_input(),
         "attribute_args": {"inputs": (randn(6, 3), randn(6, 3)),
                            "baselines": (0.5 * randn(6, 3), 0.1),
                            "additional_forward_args": (randn(6, 3), 2),
                            "target": [0, 1, 1, 0, 0, 1]}},
        {"name": "basic_tensor_target_with_internal_batching",
         "algorithms": [IntegratedHessians], "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": torch.tensor([1, 0, 0, 1]),
                            "internal_batch_size": 2}},
        # Reference distributions (Captum's DeepLiftShap / GradientShap layout).
        {"name": "basic_expected_hessians", "algorithms": [ExpectedHessians],
         "model": mlp(), "baseline_distr": True,
         "attribute_args": {"inputs": randn(4, 3), "baselines": randn(6, 3),
                            "target": [0, 1, 1, 0]}},
        {"name": "basic_multi_input_expected_hessians", "algorithms": [ExpectedHessians],
         "model": multi_input(), "baseline_distr": True,
         "attribute_args": {"inputs": (randn(6, 3), randn(6, 3)),
                            "baselines": (randn(5, 3), randn(5, 3)),
                            "additional_forward_args": (randn(6, 3), 2), "target": 1}},
        # Feature masks: groups of features.
        {"name": "basic_feature_mask", "algorithms": [GroupSparseSaliency, SmoothHess,
                                                      CrossDerivatives, IntegratedHessians],
         "model": mlp(),
         "attribute_args": {"inputs": randn(4, 3), "target": [1, 0, 1, 0],
                            "feature_mask": torch.tensor([[0, 0, 1]])}},
        # NoiseTunnel (stdevs 0 as in Captum's configs: batched == per sample).
        {"name": "basic_multi_input_multi_target_nt", "algorithms": ALL_DENSE,
         "model": multi_input(), "noise_tunnel": True,
         "attribute_args": {"inputs": (randn(3, 3), randn(3, 3)),
                            "additional_forward_args": (randn(3, 3), 2),
                            "target": [0, 1, 1], "nt_samples": 2, "stdevs": 0.0}},
        {"name": "basic_multi_tensor_target_nt", "algorithms": ALL_DENSE, "model": mlp(),
         "noise_tunnel": True,
         "attribute_args": {"inputs": randn(4, 3), "target": torch.tensor([0, 1, 1, 0]),
                            "nt_samples": 2, "stdevs": 0.0}},
        # Conv models: TaylorCAM on a layer, DTD on ReLU chains.
        {"name": "conv_multi_target", "algorithms": [TaylorCAM],
         "model": conv(), "layer": "conv2",
         "attribute_args": {"inputs": randn(2, 1, 10, 10), "target": [0, 2]}},
        {"name": "conv_feature_mask", "algorithms": [CrossDerivatives, SmoothHess],
         "model": conv(),
         "attribute_args": {"inputs": randn(2, 1, 10, 10), "target": [1, 2],
                            "feature_mask": (torch.arange(10).view(10, 1) // 4 * 3
                                             + torch.arange(10).view(1, 10) // 4)
                            .view(1, 1, 10, 10)}},
        {"name": "conv_tensor_target_nt", "algorithms": [TaylorCAM], "model": conv(),
         "layer": "conv1", "noise_tunnel": True,
         "attribute_args": {"inputs": randn(2, 1, 10, 10), "target": torch.tensor([2, 0]),
                            "regions": torch.arange(8).view(8, 1) // 4 * 2
                            + torch.arange(8).view(1, 8) // 4,
                            "nt_samples": 2, "stdevs": 0.0}},
        {"name": "relu_conv_multi_target", "algorithms": [DTDRootCheck, TaylorCAM],
         "model": conv("relu"), "layer": "conv2",
         "attribute_args": {"inputs": randn(2, 1, 10, 10).abs(), "target": [0, 2]}},
        # Captum's BasicModel_MultiLayer layout (unused linear1_alt) is not a chain.
        {"name": "relu_basic_multi_target", "algorithms": [DTDRootCheck],
         "model": mlp("relu"),
         "attribute_args": {"inputs": randn(4, 3).abs(), "target": [0, 1, 1, 0]},
         "refusals": {DTDRootCheck: NOT_A_CHAIN}},
        {"name": "relu_chain_multiple_tuple_target", "algorithms": [DTDRootCheck],
         "model": mlp("relu", alt=False),
         "attribute_args": {"inputs": randn(4, 3), "target": tuple_targets,
                            "additional_forward_args": (None, True)},
         "refusals": {DTDRootCheck: TUPLE_TARGET}},
        {"name": "relu_chain_multi_target", "algorithms": [DTDRootCheck],
         "model": mlp("relu", alt=False),
         "attribute_args": {"inputs": randn(4, 3).abs(), "target": [0, 1, 1, 0]}},
    ]
