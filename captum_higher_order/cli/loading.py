"""The one model loader and the input readers of ``captum-ho``.

``--model`` is an embedded model name (:data:`EMBEDDED_MODELS`), ``MODULE:CALLABLE``
(a module on the path *or in the current directory*) or ``path/to/file.py:CALLABLE``;
``CALLABLE`` may be dotted and names an ``nn.Module`` or a function/class that
builds one. ``--weights`` is a state-dict file or a torchvision weights name.
Every failure becomes a :class:`~captum_higher_order.cli.common.CLIError` that says
which part of the command to change.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order.cli.common import CLIError, one_line

__all__ = ["EMBEDDED_MODELS", "import_object", "load_model", "load_weights", "read_tensor_file",
           "find_layer"]

#: Models shipped in :mod:`captum_higher_order.zoo`, usable as ``--model NAME``.
EMBEDDED_MODELS = ("planted_mlp", "digits_cnn")
VISION_HINT = "pip install captum-higher-order[vision]"
_MODEL_FORMS = ("MODULE:CALLABLE or path/to/file.py:CALLABLE (e.g. torchvision.models:resnet18) "
                f"or an embedded model ({', '.join(EMBEDDED_MODELS)})")


def _import_file(path: str) -> Any:
    if not os.path.exists(path):
        raise CLIError(f"--model file not found: {path}")
    name = "_captum_ho_user_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot import {path} (--model): not a Python file.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: any failure is reported, not raised
        raise CLIError(f"importing {path} (--model) failed: {one_line(err)}") from None
    return module


def _import_module(name: str, attr: str) -> Any:
    """Import ``name``; modules in the current directory are found too (the
    console script's ``sys.path`` does not contain it)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)  # appended: installed packages keep precedence
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        hint = ""
        if missing.split(".")[0] == "torchvision":
            hint = f" torchvision is not installed: {VISION_HINT}."
        elif missing and name.startswith(missing):
            hint = (f" No module {missing!r} on the path or in {cwd}; for a file, pass "
                    f"--model path/to/{name.replace('.', '/')}.py:{attr}.")
        raise CLIError(f"cannot import {name!r} for --model: {one_line(err)}.{hint}") from None
    except Exception as err:
        raise CLIError(f"importing {name!r} (--model) failed: {one_line(err)}") from None
    finally:
        if added:
            sys.path.remove(cwd)


def import_object(spec: str) -> Any:
    """The object named by ``MODULE:ATTR`` or ``path/to/file.py:ATTR`` (``ATTR``
    may be dotted), with errors that say which part of ``--model`` is wrong."""
    if ":" not in spec:
        raise CLIError(f"--model must be {_MODEL_FORMS}, got {spec!r}.")
    module_name, _, attr_path = spec.rpartition(":")
    if module_name.endswith(".py"):
        module = _import_file(module_name)
    else:
        module = _import_module(module_name, attr_path)
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"{module_name!r} has no attribute {attr_path!r} (--model {spec}).")
        obj = getattr(obj, part)
    return obj


def _weights_kwargs(weights: Optional[str]) -> Tuple[Optional[str], Dict[str, Any]]:
    """``--weights`` -> (state-dict file, constructor kwargs)."""
    if weights is None:
        return None, {}
    if os.path.exists(weights):
        return weights, {}
    if weights.lower().endswith((".pt", ".pth", ".bin", ".ckpt")) or os.sep in weights:
        raise CLIError(f"weights file not found: {weights}")
    # a torchvision weights name such as DEFAULT or IMAGENET1K_V1 (needs a network the
    # first time; then torch's cache is used)
    return None, {"weights": weights}


def _build(obj: Any, spec: str, kwargs: Dict[str, Any]) -> nn.Module:
    if isinstance(obj, nn.Module):
        if kwargs:
            raise CLIError(f"{spec} is a model instance; --weights must be a file.")
        return obj
    if not callable(obj):
        raise CLIError(f"{spec} is neither an nn.Module nor a callable that builds one.")
    if kwargs:
        try:
            accepts = "weights" in inspect.signature(obj).parameters
        except (TypeError, ValueError):
            accepts = True
        if not accepts:
            raise CLIError(f"--weights {kwargs['weights']!r} is not a file and {spec} takes "
                           "no `weights` argument.")
    try:
        model = obj(**kwargs)
    except Exception as err:  # the user's constructor: report any failure clearly
        raise CLIError(f"calling {spec}({', '.join(kwargs)}) failed: {one_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise CLIError(f"--model {spec} gave a {type(model).__name__}, not a torch.nn.Module.")
    return model


def load_weights(model: nn.Module, path: str, spec: str) -> None:
    """Load a state dict (or ``{"state_dict": ...}``) from ``path`` into ``model``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CLIError(f"cannot read weights {path}: {one_line(err)}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as err:
        raise CLIError(f"weights {path} do not fit {spec}: {one_line(err)}") from None


def load_model(spec: str, weights: Optional[str], device: torch.device,
               dtype: Optional[torch.dtype] = None) -> nn.Module:
    """``--model`` (and ``--weights``) -> an eval-mode model on ``device``."""
    model: nn.Module
    if spec in EMBEDDED_MODELS:
        from captum_higher_order import zoo

        model = zoo.load_planted_mlp() if spec == "planted_mlp" else zoo.load_digits_cnn()
        weight_file, _ = _weights_kwargs(weights)
        if weights is not None and weight_file is None:
            raise CLIError(f"--weights for the embedded {spec} must be a file.")
    else:
        obj = import_object(spec)
        weight_file, kwargs = _weights_kwargs(weights)
        model = _build(obj, spec, kwargs)
    if weight_file is not None:
        load_weights(model, weight_file, spec)
    return model.to(device=device, dtype=dtype).eval()


def read_tensor_file(path: str, what: str) -> Any:
    """A ``.pt``/``.pth`` object, ``.npy`` tensor or ``.npz`` dict of tensors; errors
    (missing file, not a tensor file) are one line."""
    if not os.path.exists(path):
        raise CLIError(f"{what} file {path!r} does not exist.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".pt", ".pth", ".npy", ".npz"):
        raise CLIError(f"{what} must be a .pt, .npy or .npz file, got {path!r}.")
    try:
        if suffix in (".pt", ".pth"):
            return torch.load(path, map_location="cpu", weights_only=True)
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npz":
            return {k: torch.from_numpy(loaded[k]) for k in loaded.files}
        return torch.from_numpy(loaded)
    except Exception as err:
        raise CLIError(
            f"cannot read {what} {path}: {one_line(err)} (save tensors with torch.save or "
            "numpy.save; pickled objects other than tensors, tuples and dicts are refused)."
        ) from None


def find_layer(model: nn.Module, name: Optional[str]) -> Optional[nn.Module]:
    """``--layer NAME`` (or the last Conv2d when None; None when the model has none)."""
    if name:
        modules = dict(model.named_modules())
        if name not in modules:
            convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            raise CLIError(f"no layer {name!r} in the model; conv layers: "
                           f"{', '.join(convs) or 'none'}.")
        return modules[name]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def check_output(out: Any, batch: int) -> Tensor:
    """The model's output, checked to be ``(B,)`` or ``(B, C)`` scores."""
    if not isinstance(out, Tensor) or out.dim() not in (1, 2) or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CLIError(f"the model must return (B,) or (B, C) scores for B = {batch} inputs; "
                       f"it returned {shape}.")
    return out
