"""The ``captum-ho`` command line.

``captum-ho demo`` explains a few held-out digits with the embedded CNN
(:mod:`captum_higher_order.zoo`), offline and on the CPU in seconds, writes a
side-by-side figure (input, Integrated Gradients, SecondOrderSaliency,
GroupSparseSaliency, SmoothGrad, DTD, TaylorCAM region pairs) and an
interactions figure (SmoothHess / IntegratedHessians / CrossDerivatives over
2x2 pixel blocks), and prints a text summary.

``captum-ho explain --model MODULE:CALLABLE --input PATH ...`` does the same for
a user's model and an image file or a ``.pt`` / ``.npy`` tensor.

``captum-ho global`` (from :mod:`captum_higher_order.dataset_cli`) aggregates
interactions over a data set; ``captum-ho methods`` lists the methods.

Every method is looked up in :data:`METHODS`; a method whose module is missing
is reported as unavailable instead of breaking the others.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order._cli_common import CLIError, import_object
from captum_higher_order.version import __version__

SMOKE_ENV = "CAPTUM_HO_SMOKE"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TENSOR_SUFFIXES = (".pt", ".pth", ".npy")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Held-out digits shown by ``captum-ho demo`` (indices into ``zoo.digits_samples``):
#: a 0, a 3, a 5 the CNN gets wrong with low confidence, an 8, then more classes.
DEMO_INDICES = (0, 6, 11, 17, 2, 8, 13, 19, 4, 15)


def _smoke() -> bool:
    return os.environ.get(SMOKE_ENV, "") not in ("", "0", "false", "False")


# --------------------------------------------------------------------------- methods


@dataclass
class Context:
    """What a method needs: the model, one batch, resolved targets and settings."""

    model: nn.Module
    inputs: Tensor
    target: Tensor
    layer: Optional[nn.Module] = None
    feature_mask: Optional[Tensor] = None
    n_samples: int = 256
    sigma: float = 0.25
    n_steps: int = 16
    seed: int = 0
    objective: str = "log_softmax"
    cache: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodSpec:
    """One method of the command line.

    ``kind`` is ``"map"`` (input-shaped map), ``"pairs"`` (``(B, G, G)`` over
    features or ``feature_mask`` groups) or ``"cells"`` (``(B, R, R)`` over the
    cells of a layer's grid).
    """

    name: str
    label: str
    kind: str
    module: str
    description: str
    run: Callable[[Context], Tensor]
    needs_layer: bool = False

    @property
    def available(self) -> bool:
        if self.module.startswith("captum."):
            return True
        return importlib.util.find_spec(f"captum_higher_order.attr.{self.module}") is not None


def _attr_class(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"captum_higher_order.attr.{module}"), name)


def _run_ig(ctx: Context) -> Tensor:
    from captum.attr import IntegratedGradients

    return IntegratedGradients(ctx.model).attribute(
        ctx.inputs, target=ctx.target, n_steps=2 * ctx.n_steps
    )


def _run_second_order(ctx: Context) -> Tensor:
    cls = _attr_class("second_order_saliency", "SecondOrderSaliency")
    return cls(ctx.model, mode="rev_rev").attribute(ctx.inputs, target=ctx.target)


def _run_group_sparse(ctx: Context) -> Tensor:
    cls = _attr_class("group_sparse_saliency", "GroupSparseSaliency")
    return cls(ctx.model, mode="rev_rev").attribute(ctx.inputs, target=ctx.target)


def _smooth_hess(ctx: Context) -> Tuple[Tensor, Tensor]:
    """SmoothHess interactions and SmoothGrad from the same gradient calls (cached)."""
    if "smooth_hess" not in ctx.cache:
        cls = _attr_class("smooth_hess", "SmoothHess")
        hess, grad = cls(ctx.model).attribute(
            ctx.inputs,
            target=ctx.target,
            sigma=ctx.sigma,
            n_samples=ctx.n_samples,
            feature_mask=ctx.feature_mask,
            return_gradient=True,
            generator=ctx.seed,
        )
        ctx.cache["smooth_hess"] = (hess, grad)
    return ctx.cache["smooth_hess"]


def _run_smoothgrad(ctx: Context) -> Tensor:
    return _smooth_hess(ctx)[1]


def _run_smooth_hess(ctx: Context) -> Tensor:
    return _smooth_hess(ctx)[0]


def _run_dtd(ctx: Context) -> Tensor:
    cls = _attr_class("dtd_root_check", "DTDRootCheck")
    return cls(ctx.model, rule="z+").attribute(ctx.inputs, target=ctx.target)


def _run_taylor_cam(ctx: Context) -> Tensor:
    cls = _attr_class("taylor_cam", "TaylorCAM")
    if ctx.layer is None:
        raise CLIError("TaylorCAM needs a convolutional layer: pass --layer NAME.")
    return cls(ctx.model, ctx.layer).attribute(ctx.inputs, target=ctx.target)


def _run_integrated_hessians(ctx: Context) -> Tensor:
    cls = _attr_class("integrated_hessians", "IntegratedHessians")
    return cls(ctx.model).attribute(
        ctx.inputs,
        target=ctx.target,
        objective=ctx.objective,
        n_steps=ctx.n_steps,
        feature_mask=ctx.feature_mask,
    )


def _run_cross_derivatives(ctx: Context) -> Tensor:
    cls = _attr_class("cross_derivatives", "CrossDerivatives")
    return cls(ctx.model).attribute(
        ctx.inputs,
        target=ctx.target,
        objective=ctx.objective,
        feature_mask=ctx.feature_mask,
        absolute=False,
    )


METHODS: Dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec("ig", "Integrated Gradients", "map", "captum.attr",
                   "Captum's IntegratedGradients (first-order baseline)", _run_ig),
        MethodSpec("second_order", "SecondOrderSaliency", "map", "second_order_saliency",
                   "CASO map (lambda2 I - H)^-1 g of the cross-entropy (Singla et al. 2019)",
                   _run_second_order),
        MethodSpec("group_sparse", "GroupSparseSaliency", "map", "group_sparse_saliency",
                   "sparse CASO map, lambda1 searched for 75-100% zeros (Singla et al. 2019)",
                   _run_group_sparse),
        MethodSpec("smoothgrad", "SmoothGrad", "map", "smooth_hess",
                   "SmoothGrad, free with SmoothHess's gradient calls", _run_smoothgrad),
        MethodSpec("dtd", "DTD (z+)", "map", "dtd_root_check",
                   "Deep Taylor Decomposition relevance + root-point check (Sixt & Landgraf "
                   "2022)", _run_dtd),
        MethodSpec("taylor_cam", "TaylorCAM", "cells", "taylor_cam",
                   "region pairs of a conv layer (Lerman et al. 2021)", _run_taylor_cam,
                   needs_layer=True),
        MethodSpec("smooth_hess", "SmoothHess", "pairs", "smooth_hess",
                   "Gaussian-smoothed Hessian interactions (Torop et al. 2023)",
                   _run_smooth_hess),
        MethodSpec("integrated_hessians", "IntegratedHessians", "pairs", "integrated_hessians",
                   "path-integrated Hessian interactions (Janizek et al. 2021)",
                   _run_integrated_hessians),
        MethodSpec("cross_derivatives", "CrossDerivatives", "pairs", "cross_derivatives",
                   "local mixed partials (Lerman et al. 2021)", _run_cross_derivatives),
    ]
}

_ALIASES = {
    "integratedgradients": "ig",
    "integrated_gradients": "ig",
    "secondordersaliency": "second_order",
    "caso": "second_order",
    "groupsparsesaliency": "group_sparse",
    "smoothhess": "smooth_hess",
    "dtdrootcheck": "dtd",
    "taylorcam": "taylor_cam",
    "integratedhessians": "integrated_hessians",
    "crossderivatives": "cross_derivatives",
}


def resolve_methods(names: Optional[Sequence[str]]) -> List[MethodSpec]:
    """Method specs from ``--method`` values (comma lists allowed); None: all available."""
    if not names:
        return [spec for spec in METHODS.values() if spec.available]
    chosen: List[MethodSpec] = []
    for raw in names:
        for part in raw.split(","):
            key = part.strip()
            if not key:
                continue
            key = _ALIASES.get(key.lower().replace("-", "_"), key.lower().replace("-", "_"))
            if key == "all":
                return resolve_methods(None)
            if key not in METHODS:
                raise CLIError(
                    f"unknown method {part.strip()!r}; choose from {', '.join(METHODS)} "
                    "(or 'all')."
                )
            spec = METHODS[key]
            if not spec.available:
                raise CLIError(
                    f"method {key!r} is not available in this installation "
                    f"(captum_higher_order.attr.{spec.module} is missing)."
                )
            if spec not in chosen:
                chosen.append(spec)
    if not chosen:
        raise CLIError("no method selected.")
    return chosen


def _progress(items: Sequence[MethodSpec], show: bool) -> Iterable[MethodSpec]:
    if not show:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return items
    return tqdm(items, desc="captum-ho", unit="method", file=sys.stderr, leave=False)


def run_methods(
    specs: Sequence[MethodSpec],
    ctx: Context,
    show_progress: bool = False,
    failures: Optional[Dict[str, str]] = None,
) -> Tuple[Dict[str, Tensor], Dict[str, float]]:
    """Run each method on ``ctx``; returns results and seconds per method.

    With a ``failures`` dict, a method that raises is recorded there (name ->
    message) and the others still run (the demo); without it the error propagates.
    """
    results: Dict[str, Tensor] = {}
    seconds: Dict[str, float] = {}
    for spec in _progress(specs, show_progress):
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # the zero-Hessian and fallback warnings are expected for ReLU nets here
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", FutureWarning)
                results[spec.name] = spec.run(ctx).detach().cpu()
        except Exception as err:
            if failures is None:
                raise
            failures[spec.name] = f"{type(err).__name__}: {err}"
            continue
        seconds[spec.name] = time.perf_counter() - start
    return results, seconds


# --------------------------------------------------------------------------- helpers


def block_mask(height: int, width: int, block: int) -> Tensor:
    """``(1, 1, H, W)`` group ids of ``block x block`` pixel squares, row-major."""
    rows = torch.arange(height) // block
    cols = torch.arange(width) // block
    per_row = (width + block - 1) // block
    return (rows.view(-1, 1) * per_row + cols.view(1, -1)).view(1, 1, height, width)


def grid_mask(height: int, width: int, cells: int) -> Tensor:
    """``(1, 1, H, W)`` group ids of a ``cells x cells`` grid of superpixels."""
    rows = torch.arange(height) * cells // height
    cols = torch.arange(width) * cells // width
    return (rows.view(-1, 1) * cells + cols.view(1, -1)).view(1, 1, height, width)


def layer_grid(model: nn.Module, layer: nn.Module, inputs: Tensor) -> Tuple[int, ...]:
    """Spatial size of ``layer``'s output for ``inputs`` (one forward with a hook)."""
    shape: List[Tuple[int, ...]] = []

    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
        shape.append(tuple(out.shape[2:]))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        handle.remove()
    return shape[0]


def _pair_text(ranked: List[Tuple[Tuple[int, ...], float]], names: Sequence[str]) -> str:
    return ", ".join(f"{'-'.join(names[i] for i in key)} ({value:+.3g})" for key, value in ranked)


def _cell_names(grid: Tuple[int, ...]) -> List[str]:
    if len(grid) != 2:
        return [str(i) for i in range(int(torch.tensor(grid).prod()))]
    return [f"({r},{c})" for r in range(grid[0]) for c in range(grid[1])]


def _split_output(out: Optional[str], default_dir: str, stem: str) -> Tuple[str, str]:
    """``--out`` as a folder or a ``.png`` path -> (main figure, interactions figure)."""
    out = out or default_dir
    if out.lower().endswith((".png", ".pdf", ".svg", ".jpg")):
        base, ext = os.path.splitext(out)
        folder = os.path.dirname(out)
        main, inter = out, f"{base}_interactions{ext}"
    else:
        folder = out
        main = os.path.join(out, f"{stem}.png")
        inter = os.path.join(out, f"{stem}_interactions.png")
    if folder:
        os.makedirs(folder, exist_ok=True)
    return main, inter


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda was requested but CUDA is not available; use --device cpu.")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise CLIError(f"unknown device {name!r}: {err}") from None


def _save_figure(fig: Any, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")


# --------------------------------------------------------------------------- figures


def _figures(
    images: Tensor,
    results: Dict[str, Tensor],
    row_labels: List[str],
    grid: Optional[Tuple[int, ...]],
    pair_names: Sequence[str],
    region_mask: Optional[Tensor],
    main_path: str,
    inter_path: str,
    k: int = 4,
    sample: int = 0,
) -> List[str]:
    """Write the side-by-side figure and the interactions figure; return the paths."""
    from matplotlib.figure import Figure

    from captum_higher_order import visualization as viz

    written = []
    maps = {METHODS[n].label: r for n, r in results.items() if METHODS[n].kind == "map"}
    cells = {METHODS[n].label: r for n, r in results.items() if METHODS[n].kind == "cells"}
    if maps or cells:
        fig, _ = viz.visualize_side_by_side_grid(
            images, maps, cells, row_labels=row_labels,
            grid_shape=None if grid is None else (int(grid[0]), int(grid[1])), k=k,
            use_pyplot=False,
        )
        _save_figure(fig, main_path)
        written.append(main_path)
    pairs = [(n, r) for n, r in results.items() if METHODS[n].kind == "pairs"]
    if pairs:
        fig = Figure(figsize=(13, 3.6 * len(pairs)))
        axes = fig.subplots(len(pairs), 3, squeeze=False)
        for row, (name, res) in enumerate(pairs):
            label = METHODS[name].label
            viz.visualize_interaction_matrix(
                res[sample], pair_names, plt_fig_axis=(fig, axes[row, 0]), use_pyplot=False,
                title=f"{label}: sample {sample}", max_labels=20,
            )
            viz.visualize_top_interactions(
                res[sample], k=8, feature_names=pair_names, plt_fig_axis=(fig, axes[row, 1]),
                use_pyplot=False, title=f"{label}: strongest pairs",
            )
            if region_mask is not None:
                viz.visualize_image_interactions(
                    images[sample], res[sample], k=k, region_mask=region_mask,
                    plt_fig_axis=(fig, axes[row, 2]), use_pyplot=False,
                    title=f"{label}: top {k} pairs",
                )
            else:
                axes[row, 2].axis("off")
        fig.tight_layout()
        _save_figure(fig, inter_path)
        written.append(inter_path)
    return written


# --------------------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace) -> int:
    from captum_higher_order import visualization as viz
    from captum_higher_order.zoo import digits_samples, load_digits_cnn

    device = _device(args.device)
    torch.manual_seed(args.seed)
    specs = resolve_methods(args.method)
    model = load_digits_cnn(device=device)
    images, labels = digits_samples(device=device)
    if not 1 <= args.samples <= len(DEMO_INDICES):
        raise CLIError(f"--samples must be between 1 and {len(DEMO_INDICES)}.")
    index = list(DEMO_INDICES[: args.samples])
    images, labels = images[index], labels[index]
    with torch.no_grad():
        probs = torch.softmax(model(images), dim=1)
    conf, pred = probs.max(dim=1)
    mask = block_mask(8, 8, 2).to(device)  # 16 blocks of 2x2 pixels
    smoke = _smoke()
    ctx = Context(
        model, images, pred, layer=model.get_submodule("conv2"), feature_mask=mask,
        n_samples=args.n_samples or (64 if smoke else 512), sigma=0.25,
        n_steps=8 if smoke else 16, seed=args.seed,
    )
    start = time.perf_counter()
    failures: Dict[str, str] = {}
    results, seconds = run_methods(specs, ctx, show_progress=not args.quiet,
                                   failures=failures)

    report = None
    if "dtd" in results:
        dtd = _attr_class("dtd_root_check", "DTDRootCheck")(model, rule="z+")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = dtd.check(images, target=pred, n_segment_points=8, n_directions=1)
        except Exception as err:
            failures["dtd check"] = f"{type(err).__name__}: {err}"

    grid = layer_grid(model, model.get_submodule("conv2"), images)
    cell_names = _cell_names(grid)
    block_names = [f"b{r}{c}" for r in range(4) for c in range(4)]
    print(f"captum-ho {__version__} demo: embedded digits CNN "
          f"(zoo.load_digits_cnn), {len(index)} held-out digits, device {device}")
    for i in range(len(index)):
        mark = "" if int(pred[i]) == int(labels[i]) else "  <- misclassified"
        print(f"sample {i}: label {int(labels[i])}, predicted {int(pred[i])} "
              f"(confidence {float(conf[i]):.3f}){mark}")
        if "taylor_cam" in results:
            top = viz.top_interactions(results["taylor_cam"][i], k=3)
            print(f"  TaylorCAM top cell pairs (conv2 {grid[0]}x{grid[1]} cells): "
                  f"{_pair_text(top, cell_names)}")
        for name in ("smooth_hess", "integrated_hessians", "cross_derivatives"):
            if name in results:
                top = viz.top_interactions(results[name][i], k=3)
                print(f"  {METHODS[name].label} top 2x2-block pairs: "
                      f"{_pair_text(top, block_names)}")
        if report is not None:
            print(f"  DTD z+ root check: {report.verdict[i]} (valid roots by layer "
                  f"{', '.join(f'{float(v):.2f}' for v in report.valid_share[i])}; "
                  f"equals gradient x input: "
                  f"{'yes' if bool(report.equals_gxi[i]) else 'no'})")
    if report is not None:
        print(f"DTD verdict over the samples: {report.overall_verdict} "
              "(Sixt & Landgraf 2022: z+ roots leave the linear region)")

    main_path, inter_path = _split_output(args.out, "demo_out", "demo")
    labels_txt = [f"{int(labels[i])} -> {int(pred[i])} ({float(conf[i]):.2f})"
                  for i in range(len(index))]
    written = _figures(
        images.cpu(), results, labels_txt, grid, block_names, mask[0, 0].cpu(),
        main_path, inter_path, sample=int(conf.argmin()),  # the least confident digit
    )
    timing = ", ".join(f"{METHODS[n].label} {s:.1f}s" for n, s in seconds.items())
    print(f"methods: {timing}; total {time.perf_counter() - start:.1f}s")
    skipped = [s.label for s in METHODS.values() if not s.available]
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    for name, message in failures.items():
        print(f"FAILED {name}: {message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 1 if failures else 0


# --------------------------------------------------------------------------- explain


def _tabular_figures(
    results: Dict[str, Tensor], names: Sequence[str], features: int, main_path: str,
    inter_path: str,
) -> List[str]:
    """Bars of sample 0's maps (one panel per method) and of its strongest pairs."""
    from matplotlib.figure import Figure

    from captum_higher_order import visualization as viz

    written = []
    maps = {n: r for n, r in results.items() if METHODS[n].kind == "map"}
    if maps:
        fig = Figure(figsize=(6, 2.6 * len(maps)))
        axes = fig.subplots(len(maps), 1, squeeze=False)
        for row, (name, res) in enumerate(maps.items()):
            values = res[0].flatten()
            ax = axes[row, 0]
            ax.bar(range(len(values)), values.tolist(),
                   color=[viz.POSITIVE_COLOR if v >= 0 else viz.NEGATIVE_COLOR
                          for v in values.tolist()])
            if features <= 40:
                ax.set_xticks(range(len(values)))
            ax.set_title(f"{METHODS[name].label}, sample 0")
        fig.tight_layout()
        _save_figure(fig, main_path)
        written.append(main_path)
    pairs = {n: r for n, r in results.items() if METHODS[n].kind == "pairs"}
    if pairs:
        fig = Figure(figsize=(6, 3.5 * len(pairs)))
        axes = fig.subplots(len(pairs), 1, squeeze=False)
        for row, (name, res) in enumerate(pairs.items()):
            viz.visualize_top_interactions(
                res[0], k=10, feature_names=names, plt_fig_axis=(fig, axes[row, 0]),
                use_pyplot=False, title=METHODS[name].label,
            )
        fig.tight_layout()
        _save_figure(fig, inter_path)
        written.append(inter_path)
    return written


def load_model(spec: str, weights: Optional[str], device: torch.device) -> nn.Module:
    """``MODULE:CALLABLE`` (or ``path/to/file.py:CALLABLE``) -> an eval-mode model."""
    obj = import_object(spec)

    weight_file = None
    kwargs: Dict[str, Any] = {}
    if weights is not None:
        if os.path.exists(weights):
            weight_file = weights
        elif weights.lower().endswith((".pt", ".pth", ".bin", ".ckpt")) or os.sep in weights:
            raise CLIError(f"weights file not found: {weights}")
        else:
            # a torchvision weights name such as DEFAULT or IMAGENET1K_V1 (needs a network
            # the first time; then torch's cache is used)
            kwargs["weights"] = weights
    if isinstance(obj, nn.Module):
        if kwargs:
            raise CLIError(f"{spec} is a model instance; --weights must be a file.")
        model = obj
    elif callable(obj):
        if kwargs:
            try:
                accepts = "weights" in inspect.signature(obj).parameters
            except (TypeError, ValueError):
                accepts = True
            if not accepts:
                raise CLIError(
                    f"--weights {weights!r} is not a file and {spec} takes no `weights` argument."
                )
        try:
            model = obj(**kwargs)
        except Exception as err:  # the user's constructor: report any failure clearly
            raise CLIError(f"calling {spec}({', '.join(kwargs)}) failed: {err}") from None
        if not isinstance(model, nn.Module):
            raise CLIError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module.")
    else:
        raise CLIError(f"{spec} is neither an nn.Module nor a callable that builds one.")
    if weight_file is not None:
        try:
            state = torch.load(weight_file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CLIError(f"cannot read weights {weight_file}: {err}") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except Exception as err:
            raise CLIError(f"weights {weight_file} do not fit {spec}: {err}") from None
    return model.to(device).eval()


def load_input(
    path: str,
    batched: bool,
    size: Optional[int],
    normalize: str,
    grayscale: bool,
    device: torch.device,
) -> Tuple[Tensor, Optional[Tensor]]:
    """An image (PIL) or a ``.pt`` / ``.npy`` tensor -> (model input, display image)."""
    if not os.path.exists(path):
        raise CLIError(f"input file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    display = None
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image

        try:
            img = Image.open(path).convert("L" if grayscale else "RGB")
        except Exception as err:
            raise CLIError(f"cannot read image {path}: {err}") from None
        if size:
            img = img.resize((size, size))
        import numpy as np

        arr = torch.from_numpy(np.asarray(img, dtype="float32") / 255.0)
        x = arr.unsqueeze(0) if arr.dim() == 2 else arr.permute(2, 0, 1)
        display = x.clone()
        if normalize == "imagenet":
            if x.shape[0] != 3:
                raise CLIError("--normalize imagenet needs an RGB image (drop --grayscale).")
            mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
            x = (x - mean) / std
        x = x.unsqueeze(0)
        display = display.unsqueeze(0)
    elif suffix in TENSOR_SUFFIXES:
        try:
            if suffix == ".npy":
                import numpy as np

                x = torch.from_numpy(np.load(path)).float()
            else:
                x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CLIError(f"cannot read tensor {path}: {err}") from None
        if not isinstance(x, Tensor):
            raise CLIError(f"{path} holds {type(x).__name__}, not a tensor.")
        if not x.is_floating_point():
            raise CLIError(
                f"{path} holds an integer tensor ({x.dtype}); attribution needs float inputs "
                "(for token ids, explain the embedding output instead)."
            )
        x = x.float()
        if not batched:
            x = x.unsqueeze(0)
        if x.dim() == 4 and x.shape[1] in (1, 3):
            display = x.clone()
    else:
        raise CLIError(
            f"unsupported input type {suffix or '(none)'}: use an image "
            f"({', '.join(IMAGE_SUFFIXES)}) or a tensor ({', '.join(TENSOR_SUFFIXES)})."
        )
    if x.dim() < 2 or x.shape[0] == 0:
        raise CLIError(f"the input has shape {tuple(x.shape)}; expected a batch (B, ...).")
    return x.to(device), display


def _find_layer(model: nn.Module, name: Optional[str]) -> Optional[nn.Module]:
    if name:
        modules = dict(model.named_modules())
        if name not in modules:
            convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            raise CLIError(f"no layer {name!r} in the model; conv layers: {', '.join(convs)}.")
        return modules[name]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def run_explain(args: argparse.Namespace) -> int:
    from captum_higher_order import visualization as viz

    device = _device(args.device)
    torch.manual_seed(args.seed)
    specs = resolve_methods(args.method)
    model = load_model(args.model, args.weights, device)
    x, display = load_input(args.input, args.batched, args.size, args.normalize,
                            args.grayscale, device)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        raise CLIError(
            f"the model cannot run on the input of shape {tuple(x.shape)}: {err}. "
            "Check --batched, --size, --grayscale and the channel order (C, H, W)."
        ) from None
    if not isinstance(out, Tensor) or out.dim() not in (1, 2) or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CLIError(f"the model must return (B,) or (B, C) scores; it returned {shape}.")
    if args.target is None:
        target = out.argmax(1) if out.dim() == 2 else torch.zeros(len(x), dtype=torch.long)
    else:
        if out.dim() == 2 and not 0 <= args.target < out.shape[1]:
            raise CLIError(f"--target {args.target} is out of range for {out.shape[1]} classes.")
        target = torch.full((len(x),), args.target, dtype=torch.long)
    target = target.to(device)
    if out.dim() == 1:
        target = None  # type: ignore[assignment]

    layer = None
    if any(s.needs_layer for s in specs):
        layer = _find_layer(model, args.layer)
        if layer is None:
            raise CLIError("TaylorCAM needs a Conv2d layer; the model has none (pass --layer).")

    image_like = x.dim() == 4
    features = int(x[0].numel())
    mask = None
    grid_cells = args.grid
    if grid_cells is None and image_like and features > 1024:
        grid_cells = 8
    if grid_cells and any(s.kind == "pairs" for s in specs):
        if not image_like:
            raise CLIError("--grid groups image pixels; the input is not (B, C, H, W).")
        mask = grid_mask(x.shape[2], x.shape[3], grid_cells).to(device)
    if mask is None and any(s.kind == "pairs" for s in specs) and features > 4096:
        raise CLIError(
            f"{features} features are too many for a dense F x F result; pass --grid N."
        )
    ctx = Context(
        model, x, target, layer=layer, feature_mask=mask,
        n_samples=args.n_samples or (64 if _smoke() else 256), sigma=args.sigma,
        n_steps=8 if _smoke() else 16, seed=args.seed,
        # class objectives need (B, C) scores; a (B,) output is explained as is
        objective=args.objective if out.dim() == 2 else "output",
    )
    try:
        results, seconds = run_methods(specs, ctx, show_progress=not args.quiet)
    except CLIError:
        raise
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None

    if mask is not None:
        names = [f"g{i}" for i in range(int(mask.max()) + 1)]
    else:
        names = [str(i) for i in range(features)]
    scores = torch.softmax(out, 1) if out.dim() == 2 else None
    for i in range(len(x)):
        if scores is not None:
            t = int(target[i])
            print(f"sample {i}: target {t} (probability {float(scores[i, t]):.3f}, "
                  f"predicted {int(out[i].argmax())})")
        else:
            print(f"sample {i}: output {float(out[i]):.4g}")
        for name, res in results.items():
            spec = METHODS[name]
            if spec.kind in ("pairs", "cells"):
                top = viz.top_interactions(res[i], k=3)
                labels = names if spec.kind == "pairs" else [str(j) for j in range(res.shape[1])]
                print(f"  {spec.label} top pairs: {_pair_text(top, labels)}")
            else:
                flat = res[i].flatten()
                j = int(flat.abs().argmax())
                where = tuple(int(v) for v in torch.unravel_index(torch.tensor(j), res[i].shape))
                print(f"  {spec.label}: strongest feature {where if len(where) > 1 else j} "
                      f"({float(flat[j]):+.3g})")

    main_path, inter_path = _split_output(args.out, "explain_out", "explain")
    written: List[str] = []
    if display is not None:
        grid = layer_grid(model, layer, x) if layer is not None else None
        written = _figures(
            display, results, [f"sample {i}" for i in range(len(x))], grid, names,
            None if mask is None else mask[0, 0].cpu(), main_path, inter_path,
        )
    else:
        written = _tabular_figures(results, names, features, main_path, inter_path)
    raw = os.path.splitext(main_path)[0] + ".pt"
    torch.save({n: r for n, r in results.items()}, raw)
    written.append(raw)
    print("methods: " + ", ".join(f"{METHODS[n].label} {s:.1f}s" for n, s in seconds.items()))
    for path in written:
        print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method", action="append", metavar="NAME",
        help=f"method(s), repeatable or comma-separated: {', '.join(METHODS)} "
        "(default: all available)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic methods")
    p.add_argument("--n-samples", type=int, default=None,
                   help="SmoothHess / SmoothGrad gradient calls per input")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-ho",
        description="Higher-order attribution for PyTorch models (a Captum plugin).",
    )
    parser.add_argument("--version", action="version", version=f"captum-ho {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="explain a few digits with the embedded model (offline, CPU)",
        description="Explain held-out digits with the embedded CNN; write the side-by-side "
        "and interactions figures and print a summary.",
    )
    demo.add_argument("--out", default=None,
                      help="output folder, or a .png path for the main figure "
                      "(default: demo_out/)")
    demo.add_argument("--samples", type=int, default=4, help="digits to explain (1-10)")
    _add_common(demo)

    explain = sub.add_parser(
        "explain", help="explain your own model on an image or a tensor",
        description="Explain MODULE:CALLABLE on an image file or a .pt/.npy tensor.",
        epilog="Example: captum-ho explain --model torchvision.models:resnet18 "
        "--weights DEFAULT --input cat.jpg --size 224 --normalize imagenet "
        "--method ig,taylor_cam --layer layer4 (DEFAULT weights need a network once).",
    )
    explain.add_argument("--model", required=True,
                         help="MODULE:CALLABLE or path/to/file.py:CALLABLE returning an "
                         "nn.Module (or naming one)")
    explain.add_argument("--input", required=True, help="image file, .pt or .npy tensor")
    explain.add_argument("--weights", default=None,
                         help="state-dict file, or a torchvision weights name (DEFAULT)")
    explain.add_argument("--target", type=int, default=None,
                         help="class to explain (default: the predicted class)")
    explain.add_argument("--out", default=None,
                         help="output folder or .png path (default: explain_out/)")
    explain.add_argument("--layer", default=None,
                         help="layer name for TaylorCAM (default: the last Conv2d)")
    explain.add_argument("--grid", type=int, default=None,
                         help="group pixels into an NxN grid for pairwise methods "
                         "(default: 8 for images above 1024 features)")
    explain.add_argument("--batched", action="store_true",
                         help="the tensor already has a batch dimension")
    explain.add_argument("--size", type=int, default=None, help="resize images to SIZE x SIZE")
    explain.add_argument("--normalize", choices=["none", "imagenet"], default="none",
                         help="input normalisation for images")
    explain.add_argument("--grayscale", action="store_true", help="read images as 1 channel")
    explain.add_argument("--sigma", type=float, default=0.25,
                         help="SmoothHess noise standard deviation")
    explain.add_argument("--objective", default="log_softmax",
                         choices=["output", "log_softmax", "softmax", "cross_entropy"],
                         help="objective for IntegratedHessians / CrossDerivatives")
    _add_common(explain)

    sub.add_parser("methods", help="list the methods and whether they are available")
    dataset_cli = _dataset_cli()
    if dataset_cli is not None:
        dataset_cli.add_global_parser(sub)  # `captum-ho global`: dataset-level interactions
    return parser


def _dataset_cli() -> Any:
    """:mod:`captum_higher_order.dataset_cli` when installed, else None."""
    if importlib.util.find_spec("captum_higher_order.dataset_cli") is None:
        return None
    return importlib.import_module("captum_higher_order.dataset_cli")


def _list_methods() -> int:
    for spec in METHODS.values():
        state = "yes" if spec.available else "missing"
        print(f"{spec.name:<20} {spec.kind:<6} {state:<8} {spec.description}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "methods":
            return _list_methods()
        if args.command == "global":
            return int(_dataset_cli().run_global(args))
    except CLIError as err:
        print(f"captum-ho: error: {err}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
