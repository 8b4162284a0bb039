"""Inputs, targets, extra forward args, feature masks, objectives and outputs.

Every method formats what the user passed through this package, so Captum's
conventions (a Tensor or a tuple of Tensors with the batch in dim 0, every form
of ``target``, ``additional_forward_args`` passed through, Captum-style
``feature_mask``) are implemented once, and so are the error messages that tell
the user what to change. One module per concern:

* :mod:`.formatting`: inputs in tuple form, the grad-mode check, the forward call;
* :mod:`.targets`: target forms, objectives, the differentiated scalar;
* :mod:`.outputs`: the forward's output against the inputs (batch, dtype, finiteness);
* :mod:`.model`: the module behind a forward function and its training state;
* :mod:`.features`: baselines, feature masks, the dense-size guard.
"""

from captum_higher_order._inputs.features import (
    BaselineType,
    FeatureGroups,
    broadcast_to_input,
    check_dense_size,
    format_baselines,
    format_feature_mask,
    is_per_sample,
)
from captum_higher_order._inputs.formatting import (
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    ZeroHessianWarning,
    check_grad_mode,
    expand_samples,
    format_inputs,
    run_forward,
    slice_samples,
)
from captum_higher_order._inputs.model import check_model_state, find_module
from captum_higher_order._inputs.outputs import check_forward, check_output, model_float_dtype
from captum_higher_order._inputs.targets import (
    OBJECTIVES,
    check_objective,
    expand_target,
    format_target,
    resolve_target,
    select_objective,
)

__all__ = [
    "BaselineType",
    "FeatureGroups",
    "FormattedInputs",
    "OBJECTIVES",
    "TargetType",
    "TensorOrTuple",
    "ZeroHessianWarning",
    "broadcast_to_input",
    "check_dense_size",
    "check_forward",
    "check_grad_mode",
    "check_model_state",
    "check_objective",
    "check_output",
    "expand_samples",
    "expand_target",
    "find_module",
    "format_baselines",
    "format_feature_mask",
    "format_inputs",
    "format_target",
    "is_per_sample",
    "model_float_dtype",
    "resolve_target",
    "run_forward",
    "select_objective",
    "slice_samples",
]
