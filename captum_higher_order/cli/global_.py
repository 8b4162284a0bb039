"""``captum-ho global``: dataset-level interactions from the command line.

Runs :func:`captum_higher_order.dataset.explain_dataset` for an embedded model
(``planted_mlp``, ``digits_cnn``) or a user's model on a ``.pt`` / ``.npy`` /
``.npz`` dataset, with a progress bar, checkpoint/resume, a printed ranking and
a figure of the top interactions. Under ``torchrun`` every process takes a
shard of the batches::

    torchrun --nproc_per_node=2 -m captum_higher_order.cli global \\
        --model planted_mlp --checkpoint run.ckpt --out results/
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order.cli.common import (
    TRACEBACK_ENV,
    CLIError,
    device_from_flag,
    one_line,
    versions,
)
from captum_higher_order.cli.flags import add_common
from captum_higher_order.cli.global_report import distributed, report
from captum_higher_order.cli.loading import EMBEDDED_MODELS, load_model, read_tensor_file
from captum_higher_order.cli.method_args import per_method
from captum_higher_order.cli.registry import MethodSpec, for_subcommand, resolve_methods
from captum_higher_order.cli.summary import cell_names
from captum_higher_order.dataset import REDUCTIONS, CheckpointError, explain_dataset

__all__ = ["METHOD_NAMES", "EMBEDDED_MODELS", "add_global_parser", "run_global",
           "load_dataset"]

#: The methods ``captum-ho global`` runs (any spelling of :mod:`.registry` works).
METHOD_NAMES = tuple(spec.name for spec in for_subcommand("global"))
DEFAULT_METHOD = "cross_derivatives"
_X_KEYS = ("inputs", "x", "data", "X", "features", "images")
_Y_KEYS = ("labels", "y", "targets", "target", "label")


def add_global_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``global`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "global",
        help="aggregate interactions over a dataset (streaming, resumable, torchrun-ready)",
        description=(
            "Explain every sample of a dataset and aggregate the local interactions "
            "(mean of absolute values by default) into global ones; print the top "
            "pairs and draw them. Launch with `torchrun --nproc_per_node=N -m "
            "captum_higher_order.cli global ...` to shard the batches over N processes."
        ),
    )
    p.add_argument("--data", help=".pt (a tensor, (inputs, labels) or a dict), .npy or .npz; "
                                  "default for embedded models: their own data")
    p.add_argument("--labels", help=".pt/.npy integer labels (for --target label)")
    p.add_argument("--limit", type=int, help="use only the first N samples")
    p.add_argument("--target", default="auto",
                   help="an int class, 'label', 'predicted', 'none', or 'auto' (predicted "
                        "for class outputs, none for one output) [auto]")
    p.add_argument("--reduce", default="mean_abs", choices=REDUCTIONS)
    p.add_argument("--patch", type=int,
                   help="group image pixels into PATCH x PATCH blocks (feature_mask)")
    p.add_argument("--feature-mask", help=".pt/.npy integer group ids (broadcastable to one "
                                          "sample with a leading 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--checkpoint", help="checkpoint file: resumes if it exists")
    p.add_argument("--checkpoint-every", type=int, default=20, help="batches [20]")
    p.add_argument("--top", type=int, default=10, help="how many interactions to report")
    p.add_argument("--feature-names", help="comma-separated names of the features")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    add_common(p, model=True, out="captum_ho_global/ (figure, result .pt, ranking .json)")
    p.set_defaults(func=run_global)
    return p


def load_dataset(path: str, labels: Optional[str]) -> Tuple[Tensor, Optional[Tensor]]:
    """``(inputs, labels or None)`` from a .pt/.npy/.npz file (and a labels file)."""
    obj = read_tensor_file(path, "--data")
    x, y = None, None
    if isinstance(obj, Tensor):
        x = obj
    elif isinstance(obj, (tuple, list)) and 1 <= len(obj) <= 2:
        x, y = obj[0], (obj[1] if len(obj) == 2 else None)
    elif isinstance(obj, dict):
        x = next((obj[k] for k in _X_KEYS if k in obj), None)
        y = next((obj[k] for k in _Y_KEYS if k in obj), None)
    if not isinstance(x, Tensor):
        raise CLIError(
            f"--data {path!r} must hold a tensor, an (inputs, labels) pair or a dict with "
            f"one of the keys {', '.join(_X_KEYS)}."
        )
    if labels is not None:
        y = read_tensor_file(labels, "--labels")
    if y is not None and (not isinstance(y, Tensor) or y.dim() != 1
                          or y.shape[0] != x.shape[0]):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise CLIError(f"labels have shape {shape} but there are {x.shape[0]} samples; "
                       "pass one integer label per sample.")
    return x, y


def _embedded_data(spec: str) -> Tuple[Tensor, Optional[Tensor], Optional[List[str]]]:
    from captum_higher_order import zoo

    if spec == "planted_mlp":
        return zoo.sample_inputs(512, seed=1), None, list(zoo.FEATURE_NAMES)
    try:
        split = zoo.load_digits_data("test")
        x, y = split[0], split[1]
    except ImportError:
        samples = zoo.digits_samples()
        x, y = samples[0], samples[1]
    return x, y, None


def _target(arg: str, model: nn.Module, x: Tensor) -> Any:
    if arg in ("label", "predicted"):
        return arg
    if arg == "none":
        return None
    if arg == "auto":
        with torch.no_grad():
            out = model(x[:1])
        return "predicted" if out.dim() == 2 and out.shape[1] > 1 else None
    try:
        return int(arg)
    except ValueError:
        raise CLIError(
            f"--target must be an int, 'label', 'predicted', 'none' or 'auto', got {arg!r}."
        ) from None


def _one_method(names: Optional[List[str]]) -> MethodSpec:
    specs = resolve_methods(names or [DEFAULT_METHOD], "global")
    if len(specs) != 1:
        raise CLIError("`captum-ho global` aggregates one method per run; pass one --method.")
    return specs[0]


def _feature_mask(args: argparse.Namespace, x: Tensor) -> Optional[Tensor]:
    if args.patch is not None and args.feature_mask is not None:
        raise CLIError("pass either --patch or --feature-mask, not both.")
    if args.patch is not None:
        if x.dim() < 3 or args.patch < 1:
            raise CLIError(
                f"--patch needs image inputs (N, C, H, W) or (N, H, W) and a positive size; "
                f"the data are {tuple(x.shape)}."
            )
        h, w = x.shape[-2:]
        rows = torch.arange(h) // args.patch
        cols = torch.arange(w) // args.patch
        grid = rows.view(-1, 1) * ((w + args.patch - 1) // args.patch) + cols.view(1, -1)
        return grid.view(1, *([1] * (x.dim() - 3)), h, w)
    if args.feature_mask is None:
        return None
    mask = read_tensor_file(args.feature_mask, "--feature-mask")
    if not isinstance(mask, Tensor):
        raise CLIError("--feature-mask must hold one integer tensor.")
    mask = mask.long()
    return mask.unsqueeze(0) if mask.dim() == x.dim() - 1 else mask


def method_kwargs(args: argparse.Namespace, spec: MethodSpec, x: Tensor,
                  objective: str) -> Dict[str, Any]:
    """``attribute()`` keywords: ``--method-arg``, the objective, the feature mask."""
    kwargs = per_method(args.method_arg, [spec])[spec.name]
    if spec.objective is not None:
        kwargs.setdefault("objective", objective)
    if args.n_samples is not None and spec.name == "smooth_hess":
        kwargs.setdefault("n_samples", args.n_samples)
    mask = _feature_mask(args, x)
    if mask is not None:
        if not spec.takes_mask:
            raise CLIError(f"--method {spec.name} does not take a feature mask.")
        kwargs["feature_mask"] = mask
    return kwargs


def _load_data(args: argparse.Namespace) -> Tuple[Tensor, Optional[Tensor], Optional[List[str]]]:
    names: Optional[List[str]] = None
    if args.data is None:
        if args.model not in EMBEDDED_MODELS:
            raise CLIError("--data is required for a user model.")
        x, y, names = _embedded_data(args.model)
    else:
        x, y = load_dataset(args.data, args.labels)
    if args.feature_names:
        names = [n.strip() for n in args.feature_names.split(",")]
    if args.limit is not None:
        x, y = x[: args.limit], (None if y is None else y[: args.limit])
    if x.shape[0] == 0:
        raise CLIError("the dataset is empty.")
    if not x.is_floating_point():
        raise CLIError(f"inputs must be floating point, got {x.dtype}.")
    return x, y, names


def _settings(args: argparse.Namespace, spec: MethodSpec, target: Any,
              kwargs: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "model": args.model, "data": args.data, "method": spec.name,
        "target": target, "objective": kwargs.get("objective"),
        "reduce": args.reduce, "patch": args.patch, "seed": args.seed,
        "method_args": {k: repr(v) for k, v in kwargs.items()
                        if k not in ("feature_mask", "objective")},
        "versions": versions(),
    }


def _run(args: argparse.Namespace, device: torch.device) -> int:
    torch.manual_seed(args.seed)
    spec = _one_method(args.method)
    dtype = getattr(torch, args.dtype)
    model = load_model(args.model, args.weights, device, dtype)
    x, y, names = _load_data(args)
    x = x.to(dtype)
    target = _target(args.target, model, x.to(device))
    if target == "label" and y is None:
        raise CLIError("--target label needs labels: pass --labels or a (inputs, "
                       "labels) dataset.")
    objective = args.objective
    if objective == "auto":
        objective = "log_softmax" if target is not None else "output"
    kwargs = method_kwargs(args, spec, x, objective)
    if "feature_mask" in kwargs:
        kwargs["feature_mask"] = kwargs["feature_mask"].to(device)
        # names describe features, not groups; patches are named by (row,col)
        names = None
        if args.patch is not None:
            h, w = x.shape[-2:]
            names = cell_names((-(-h // args.patch), -(-w // args.patch)))
    tensors = (x,) if y is None else (x, y.long())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors),
                                         batch_size=args.batch_size, shuffle=False)
    result = explain_dataset(
        spec.cls(model), loader, target=target, reduce=args.reduce, attribute_kwargs=kwargs,
        checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
        progress=not args.quiet, device=device,
    )
    report(args.out or "captum_ho_global", args.top, spec.name, result, names,
           _settings(args, spec, target, kwargs))
    return 0


def run_global(args: argparse.Namespace) -> int:
    """Run ``captum-ho global`` with parsed ``args``; returns the exit status."""
    try:
        device = device_from_flag(args.device)
        with distributed(device):
            return _run(args, device)
    except (CLIError, CheckpointError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"captum-ho global: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the model or the method broke: one line, not a traceback
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"captum-ho global: failed: {one_line(err)} (set {TRACEBACK_ENV}=1 for the "
              "traceback)", file=sys.stderr)
        return 1
