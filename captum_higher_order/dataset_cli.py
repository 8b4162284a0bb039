"""``captum-ho global``: dataset-level interactions from the command line.

Runs :func:`captum_higher_order.dataset.explain_dataset` for an embedded model
(``planted_mlp``, ``digits_cnn``) or a user's model (``MODULE:CALLABLE`` or
``path/to/file.py:CALLABLE``) on a ``.pt`` / ``.npy`` / ``.npz`` dataset, with a
progress bar, checkpoint/resume, a printed ranking and a figure of the top
interactions. Under ``torchrun`` every process takes a shard of the batches::

    torchrun --nproc_per_node=2 -m captum_higher_order.dataset_cli global \\
        --model planted_mlp --checkpoint run.ckpt --out results/

The ``captum-ho`` entry point wires :func:`add_global_parser` and
:func:`run_global` into its subcommands.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order._cli_common import CLIError, import_object
from captum_higher_order.dataset import REDUCTIONS, CheckpointError, explain_dataset

__all__ = ["METHOD_NAMES", "EMBEDDED_MODELS", "add_global_parser", "run_global"]

#: Embedded models and the data used when ``--data`` is not given.
EMBEDDED_MODELS = ("planted_mlp", "digits_cnn")

#: ``--method`` choices -> (module, class) built as ``cls(model)``.
_METHODS: Dict[str, Tuple[str, str]] = {
    "cross-derivatives": ("captum_higher_order.attr.cross_derivatives", "CrossDerivatives"),
    "smooth-hess": ("captum_higher_order.attr.smooth_hess", "SmoothHess"),
    "integrated-hessians": ("captum_higher_order.attr.integrated_hessians", "IntegratedHessians"),
    "hessian": ("captum_higher_order.dataset_cli", "ExactHessian"),
    "saliency": ("captum.attr", "Saliency"),
    "integrated-gradients": ("captum.attr", "IntegratedGradients"),
}
METHOD_NAMES = tuple(_METHODS)
_INTERACTION_METHODS = ("cross-derivatives", "smooth-hess", "integrated-hessians", "hessian")




class ExactHessian:
    """Exact per-sample (group) Hessians from the engine, as an attribution.

    ``attribute(inputs, target, additional_forward_args, objective, feature_mask)``
    returns :func:`captum_higher_order.hessian.hessian`: ``(B, F, F)`` or
    ``(B, G, G)``.
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        self.forward_func = forward_func

    def attribute(self, inputs: Any, target: Any = None, **kwargs: Any) -> Tensor:
        from captum_higher_order.hessian import hessian

        return hessian(self.forward_func, inputs, target=target, **kwargs)


# --------------------------------------------------------------------------- parser


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
    p.add_argument("--model", required=True,
                   help=f"an embedded model ({', '.join(EMBEDDED_MODELS)}), MODULE:CALLABLE "
                        "or path/to/file.py:CALLABLE returning an nn.Module")
    p.add_argument("--weights", help="a state_dict (.pt) to load into the model")
    p.add_argument("--data", help=".pt (a tensor, (inputs, labels) or a dict), .npy or .npz; "
                                  "default for embedded models: their own data")
    p.add_argument("--labels", help=".pt/.npy integer labels (for --target label)")
    p.add_argument("--limit", type=int, help="use only the first N samples")
    p.add_argument("--method", default="cross-derivatives", choices=METHOD_NAMES)
    p.add_argument("--target", default="auto",
                   help="an int class, 'label', 'predicted', 'none', or 'auto' (predicted "
                        "for class outputs, none for one output) [auto]")
    p.add_argument("--objective", default="auto",
                   help="output, log_softmax, softmax, cross_entropy, or auto (log_softmax "
                        "for class outputs, output otherwise) [auto]")
    p.add_argument("--reduce", default="mean_abs", choices=REDUCTIONS)
    p.add_argument("--patch", type=int,
                   help="group image pixels into PATCH x PATCH blocks (feature_mask)")
    p.add_argument("--feature-mask", help=".pt/.npy integer group ids (broadcastable to one "
                                          "sample with a leading 1)")
    p.add_argument("--method-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra keyword for attribute(), e.g. n_samples=64 (repeatable)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--checkpoint", help="checkpoint file: resumes if it exists")
    p.add_argument("--checkpoint-every", type=int, default=20, help="batches [20]")
    p.add_argument("--top", type=int, default=10, help="how many interactions to report")
    p.add_argument("--feature-names", help="comma-separated names of the features")
    p.add_argument("--out", default="captum_ho_global",
                   help="output folder (figure, result .pt, ranking .json)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_global)
    return p


# --------------------------------------------------------------------------- loading


def _load_callable(spec: str) -> Any:
    if ":" not in spec:
        raise CLIError(
            f"--model must be one of {', '.join(EMBEDDED_MODELS)} or MODULE:CALLABLE "
            f"(or path/to/file.py:CALLABLE), got {spec!r}."
        )
    return import_object(spec)


def load_model(spec: str, weights: Optional[str], device: torch.device,
               dtype: torch.dtype) -> nn.Module:
    """An eval-mode model from an embedded name or ``MODULE:CALLABLE``."""
    model: nn.Module
    if spec in EMBEDDED_MODELS:
        from captum_higher_order import zoo

        model = zoo.load_planted_mlp() if spec == "planted_mlp" else zoo.load_digits_cnn()
    else:
        obj = _load_callable(spec)
        model = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
        if not isinstance(model, nn.Module):
            raise CLIError(
                f"--model {spec} gave a {type(model).__name__}, not a torch.nn.Module."
            )
    if weights is not None:
        if not os.path.exists(weights):
            raise CLIError(f"--weights file {weights!r} does not exist.")
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.to(device=device, dtype=dtype).eval()


def _load_array(path: str, what: str) -> Any:
    if not os.path.exists(path):
        raise CLIError(f"{what} file {path!r} does not exist.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".pt", ".pth"):
        return torch.load(path, map_location="cpu", weights_only=True)
    if suffix in (".npy", ".npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npz":
            return {k: torch.from_numpy(loaded[k]) for k in loaded.files}
        return torch.from_numpy(loaded)
    raise CLIError(f"{what} must be a .pt, .npy or .npz file, got {path!r}.")


_X_KEYS = ("inputs", "x", "data", "X", "features", "images")
_Y_KEYS = ("labels", "y", "targets", "target", "label")


def load_dataset(path: str, labels: Optional[str]) -> Tuple[Tensor, Optional[Tensor]]:
    """``(inputs, labels or None)`` from a .pt/.npy/.npz file (and a labels file)."""
    obj = _load_array(path, "--data")
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
        y = _load_array(labels, "--labels")
        y = y if isinstance(y, Tensor) else None
    if y is not None and (y.dim() != 1 or y.shape[0] != x.shape[0]):
        raise CLIError(
            f"labels have shape {tuple(y.shape)} but there are {x.shape[0]} samples; "
            "pass one integer label per sample."
        )
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


def _objective(arg: str, target: Any) -> str:
    if arg != "auto":
        return arg
    return "log_softmax" if target is not None else "output"


def _method_kwargs(args: argparse.Namespace, x: Tensor, objective: str) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {}
    for item in args.method_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CLIError(f"--method-arg takes KEY=VALUE, got {item!r}.")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value  # a plain string
    if args.method in _INTERACTION_METHODS:
        kwargs.setdefault("objective", objective)
    mask = None
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
        mask = grid.view(1, *([1] * (x.dim() - 3)), h, w)
    elif args.feature_mask is not None:
        mask = _load_array(args.feature_mask, "--feature-mask")
        if not isinstance(mask, Tensor):
            raise CLIError("--feature-mask must hold one integer tensor.")
        mask = mask.long()
        if mask.dim() == x.dim() - 1:
            mask = mask.unsqueeze(0)
    if mask is not None:
        if args.method not in ("cross-derivatives", "smooth-hess", "integrated-hessians",
                               "hessian"):
            raise CLIError(f"--method {args.method} does not take a feature mask.")
        kwargs["feature_mask"] = mask
    return kwargs


def _build_method(name: str, model: nn.Module) -> Any:
    module_name, cls_name = _METHODS[name]
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as err:
        raise CLIError(f"--method {name} is not available in this install: {err}") from err
    return cls(model)


# --------------------------------------------------------------------------- distributed


def _init_distributed(device: torch.device) -> bool:
    """Initialise torch.distributed from torchrun's environment; True if we did."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return True


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


# --------------------------------------------------------------------------- outputs


def _names(result: Any, given: Optional[Sequence[str]]) -> Optional[List[str]]:
    value = result.value[0] if isinstance(result.value, tuple) else result.value
    size = value.shape[0] if result.kind == "interaction" else value.numel()
    if given is None:
        return None
    if len(given) != size:
        raise CLIError(f"{len(given)} feature names for {size} features.")
    return list(given)


def _figure(result: Any, ranked: List[Any], names: Optional[List[str]], path: str,
            title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        " x ".join(e.names) if e.names else " x ".join(str(i) for i in e.features)
        for e in ranked
    ]
    value = result.value
    show_matrix = result.kind == "interaction" and isinstance(value, Tensor) and value.dim() == 2
    fig, axes = plt.subplots(1, 2 if show_matrix else 1,
                             figsize=(11 if show_matrix else 6, 4.5), squeeze=False)
    ax = axes[0][0]
    values = [e.value for e in ranked][::-1]
    errors = [0.0 if e.stderr != e.stderr else 1.96 * e.stderr for e in ranked][::-1]
    ax.barh(range(len(ranked)), values, xerr=errors, color="tab:blue", ecolor="black",
            capsize=2)
    ax.set_yticks(range(len(ranked)))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_xlabel(f"{result.reduce} over {result.count} samples (95% CI)")
    ax.set_title(title)
    if show_matrix:
        ax2 = axes[0][1]
        mat = value.clone()
        mat.fill_diagonal_(0)
        lim = float(mat.abs().max()) or 1.0
        im = ax2.imshow(mat.numpy(), cmap="RdBu_r" if result.reduce == "mean" else "viridis",
                        vmin=-lim if result.reduce == "mean" else 0, vmax=lim)
        ax2.set_title("aggregated interactions (diagonal hidden)")
        if names is not None and len(names) <= 40:
            ax2.set_xticks(range(len(names)))
            ax2.set_xticklabels(names, rotation=90, fontsize=7)
            ax2.set_yticks(range(len(names)))
            ax2.set_yticklabels(names, fontsize=7)
        fig.colorbar(im, ax=ax2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(args: argparse.Namespace, result: Any, names: Optional[List[str]],
            settings: Dict[str, Any]) -> None:
    os.makedirs(args.out, exist_ok=True)
    ranked = result.rank(args.top, feature_names=names)
    print(f"{args.method}: {result.reduce} over {result.count} samples "
          f"({result.batches} batches)")
    print(f"{'rank':>4}  {'features':<28} {'value':>12} {'stderr':>10}")
    for i, e in enumerate(ranked, 1):
        label = ", ".join(e.names) if e.names else ", ".join(str(j) for j in e.features)
        print(f"{i:>4}  {label:<28} {e.value:>12.5g} {e.stderr:>10.3g}")
    figure = os.path.join(args.out, "global_interactions.png")
    _figure(result, ranked, names, figure, f"top {len(ranked)}: {args.method}")
    torch.save(dict(result.as_dict(), settings=settings, feature_names=names),
               os.path.join(args.out, "global.pt"))
    with open(os.path.join(args.out, "global_top.json"), "w") as f:
        json.dump({"settings": settings, "count": result.count, "reduce": result.reduce,
                   "top": [{"features": list(e.features), "names": e.names, "value": e.value,
                            "stderr": e.stderr} for e in ranked]}, f, indent=2)
    print(f"wrote {figure}, global.pt and global_top.json to {args.out}")


# --------------------------------------------------------------------------- command


def run_global(args: argparse.Namespace) -> int:
    """Run ``captum-ho global`` with parsed ``args``; returns the exit status."""
    started = False
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CLIError("--device cuda was asked for but CUDA is not available.")
        started = _init_distributed(device)
        dtype = getattr(torch, args.dtype)
        model = load_model(args.model, args.weights, device, dtype)
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
        x = x.to(dtype)
        target = _target(args.target, model, x.to(device))
        if target == "label" and y is None:
            raise CLIError("--target label needs labels: pass --labels or a (inputs, "
                             "labels) dataset.")
        objective = _objective(args.objective, target)
        kwargs = _method_kwargs(args, x, objective)
        if "feature_mask" in kwargs:
            kwargs["feature_mask"] = kwargs["feature_mask"].to(device)
            names = None  # names describe features, not groups
        method = _build_method(args.method, model)
        tensors = (x,) if y is None else (x, y.long())
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*tensors), batch_size=args.batch_size,
            shuffle=False,
        )
        result = explain_dataset(
            method, loader, target=target, reduce=args.reduce, attribute_kwargs=kwargs,
            checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress, device=device,
        )
        names = _names(result, names)
        if _rank() == 0:
            settings = {
                "model": args.model, "data": args.data, "method": args.method,
                "target": target, "objective": kwargs.get("objective"),
                "reduce": args.reduce, "patch": args.patch,
                "method_args": {k: repr(v) for k, v in kwargs.items()
                                if k not in ("feature_mask", "objective")},
            }
            _report(args, result, names, settings)
        return 0
    except (CLIError, CheckpointError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"captum-ho global: error: {err}", file=sys.stderr)
        return 2
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> int:
    """Standalone entry point (``python -m captum_higher_order.dataset_cli ...``)."""
    parser = argparse.ArgumentParser(prog="captum-ho")
    add_global_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_global(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
