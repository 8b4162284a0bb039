"""Benchmark of IntegratedHessians against per-feature double-backward loops.

Model: a 784-input MLP (784-256-128-10, SoftPlus, float32, random weights),
objective "output" of class 3, zero baseline, small batches and ``n_steps``
(``--settings``), Gauss-Legendre path points. The result is the full 784 x 784
interaction matrix per sample.

Baselines, written here, computing the same quantity:

* ``loop (same K points)``: the public code's scheme on our single-integral
  rule: at the K path points ``x' + t_k (x - x')`` (all samples and points in
  one autograd batch) one gradient with ``create_graph=True``, then one
  double backward per feature (784 of them) to get the Hessian rows.
* ``loop (paper n x n)``: the same loop over the paper's double sum, the
  ``n_steps x n_steps`` path points ``x' + a_k a_l (x - x')`` with Captum's
  Gauss-Legendre rule in ``a`` and ``b``. It has the same polynomial exactness
  as our ``n_steps``-point rule (degree < 2 n_steps), so it is the
  like-for-like cost of the textbook double integral.

Ratios are medians of back-to-back timings (load from other processes hits
both alike). The max abs difference to IntegratedHessians is printed too.

``--adaptive BATCH`` adds the accuracy-target rule (``n_steps=None``,
``tol=1e-3``): its time (search included), the rule it chose, its error
against ``n_steps=32`` and the loop on the same chosen points (equal
accuracy). ``--resnet SIZExCELLS`` times torchvision's resnet18 (random
weights, ReLUs swapped for Softplus(10), log-softmax of class 0, one image
``3 x SIZE x SIZE``, a ``CELLS x CELLS`` grid of superpixels) with
``n_steps=None`` against ``n_steps=16``.

Run: ``python benchmarks/integrated_hessians.py [--settings 1x4,2x4]
[--adaptive 2] [--resnet 32x4] [--repeats 2] [--device cpu|cuda]``
(settings are BATCHxN_STEPS; an empty ``--settings ""`` skips them).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Dict, List, Tuple

import torch
from timing import sync, timed
from torch import Tensor, nn

from captum_higher_order._captum import approximation_parameters
from captum_higher_order.attr.integrated_hessians import IntegratedHessians, path_quadrature

TARGET = 3


def make_model(device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 256), nn.Softplus(), nn.Linear(256, 128), nn.Softplus(),
        nn.Linear(128, 10),
    ).to(device).eval()


def loop_integrated_hessians(
    model: nn.Module, x: Tensor, base: Tensor, t: Tensor, w: Tensor
) -> Tensor:
    """Gamma = sum_k w_k [t_k D D^T * H(t_k) + diag(D * grad(t_k))], Hessian rows
    by one double backward per feature."""
    batch, features = x.shape
    k = t.numel()
    delta = x - base
    points = (base.unsqueeze(1) + t.view(1, k, 1) * delta.unsqueeze(1)).reshape(-1, features)
    points.requires_grad_(True)
    with torch.enable_grad():
        out = model(points)[:, TARGET].sum()
        (grad,) = torch.autograd.grad(out, points, create_graph=True)
        rows = []
        for i in range(features):  # the per-feature loop
            (row,) = torch.autograd.grad(grad[:, i].sum(), points, retain_graph=True)
            rows.append(row)
    hess = torch.stack(rows, dim=1).view(batch, k, features, features)
    grad = grad.detach().view(batch, k, features)
    weight_h = (w * t).view(1, k, 1, 1)
    gamma = (weight_h * hess).sum(1) * delta.unsqueeze(2) * delta.unsqueeze(1)
    return gamma + torch.diag_embed(delta * (w.view(1, k, 1) * grad).sum(1))


def paper_rule(n: int) -> Tuple[Tensor, Tensor]:
    steps, alphas = approximation_parameters("gausslegendre")
    a = torch.tensor(alphas(n), dtype=torch.float64)
    wa = torch.tensor(steps(n), dtype=torch.float64)
    return (a.view(-1, 1) * a).flatten(), (wa.view(-1, 1) * wa).flatten()


def run_setting(batch: int, n_steps: int, repeats: int, device: str) -> str:
    torch.manual_seed(1)
    model = make_model(device)
    x = torch.rand(batch, 784, device=device)
    base = torch.zeros_like(x)
    ih = IntegratedHessians(model)
    t, w = (v.to(device=device, dtype=x.dtype) for v in path_quadrature("gausslegendre",
                                                                         n_steps))
    tp, wp = (v.to(device=device, dtype=x.dtype) for v in paper_rule(n_steps))

    def ours() -> Tensor:
        return ih.attribute(x, base, target=TARGET, n_steps=n_steps)

    ref = ours()  # warm-up
    scale = float(ref.abs().max())
    times = {"ours": [], "same": [], "paper": []}
    diffs = {}
    for _ in range(repeats):  # back to back, so load hits all three alike
        times["ours"].append(timed(ours, device))
        for key, (tt, ww) in (("same", (t, w)), ("paper", (tp, wp))):
            start = time.perf_counter()
            result = loop_integrated_hessians(model, x, base, tt, ww)
            sync(device)
            times[key].append(time.perf_counter() - start)
            diffs[key] = float((result - ref).abs().max()) / scale
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {
        k: statistics.median(a / o for a, o in zip(times[k], times["ours"]))
        for k in ("same", "paper")
    }
    k = t.numel()
    return "\n".join([
        f"| {batch} | {n_steps} | IntegratedHessians (vmapped HVPs) | {k} | "
        f"{med['ours']:.3f} | 1.0x | - |",
        f"| {batch} | {n_steps} | loop, same {k} points | {k} | {med['same']:.3f} | "
        f"**{ratio['same']:.1f}x** | {diffs['same']:.1e} |",
        f"| {batch} | {n_steps} | loop, paper's {n_steps}x{n_steps} double sum | "
        f"{tp.numel()} | {med['paper']:.3f} | **{ratio['paper']:.1f}x** | "
        f"{diffs['paper']:.1e} |",
    ])


def run_adaptive(batch: int, repeats: int, device: str, tol: float = 1e-3) -> str:
    torch.manual_seed(1)
    model = make_model(device)
    x = torch.rand(batch, 784, device=device)
    base = torch.zeros_like(x)
    ih = IntegratedHessians(model)
    ref = ih.attribute(x, base, target=TARGET, n_steps=32)
    scale = float(ref.abs().max())

    def adaptive() -> Tensor:
        return ih.attribute(x, base, target=TARGET, n_steps=None, tol=tol)

    got = adaptive()
    info = ih.last_info
    assert info is not None
    t, w = (v.to(device=device, dtype=x.dtype) for v in path_quadrature("gausslegendre",
                                                                         info.n_steps))
    def fixed() -> Tensor:
        return ih.attribute(x, base, target=TARGET, n_steps=info.n_steps)

    times: Dict[str, List[float]] = {"ours": [], "fixed": [], "loop": []}
    for _ in range(repeats):
        times["ours"].append(timed(adaptive, device))
        times["fixed"].append(timed(fixed, device))
        times["loop"].append(timed(lambda: loop_integrated_hessians(model, x, base, t, w),
                                   device))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / o for a, o in zip(times["loop"], times["ours"]))
    err = float((got - ref).abs().max()) / scale
    tried = ", ".join(f"{n}: {g:.1e}" for n, g in info.tried)
    gap = float(info.relative_gap.max()) if info.relative_gap is not None else float("nan")
    return "\n".join([
        f"| {batch} | None (tol {tol:g}) | IntegratedHessians adaptive, chose {info.n_steps} "
        f"(gaps {tried}; reached {gap:.1e}) | {info.path_points} | {med['ours']:.3f} | 1.0x | "
        f"{err:.1e} vs n_steps=32 |",
        f"| {batch} | {info.n_steps} | IntegratedHessians, fixed rule (no search) | "
        f"{info.path_points} | {med['fixed']:.3f} | "
        f"{statistics.median(a / o for a, o in zip(times['fixed'], times['ours'])):.2f}x | - |",
        f"| {batch} | {info.n_steps} | loop, same {info.path_points} points | "
        f"{info.path_points} | {med['loop']:.3f} | **{ratio:.1f}x** | - |",
    ])


def run_resnet(size: int, cells: int, device: str, tol: float = 1e-3) -> str:
    from torchvision.models import resnet18

    from captum_higher_order.surrogate import softplus_surrogate

    torch.manual_seed(0)
    model = resnet18(weights=None).to(device).eval()
    x = torch.rand(1, 3, size, size, device=device)
    ids = torch.arange(size, device=device) * cells // size
    mask = (ids.view(-1, 1) * cells + ids.view(1, -1)).view(1, 1, size, size)
    ih = IntegratedHessians(model)
    kwargs = dict(target=0, objective="log_softmax", feature_mask=mask)
    with softplus_surrogate(model, beta=10.0):
        start = time.perf_counter()
        adaptive = ih.attribute(x, n_steps=None, tol=tol, **kwargs)
        sync(device)
        t_adaptive = time.perf_counter() - start
        info = ih.last_info
        assert info is not None
        start = time.perf_counter()
        fixed, delta = ih.attribute(x, n_steps=16, return_convergence_delta=True, **kwargs)
        sync(device)
        t_fixed = time.perf_counter() - start
    gap16 = float(ih.last_info.relative_gap.max()) if ih.last_info is not None and \
        ih.last_info.relative_gap is not None else float("nan")
    assert info.relative_gap is not None
    err = float((adaptive - fixed).abs().max() / fixed.abs().max())
    tried = ", ".join(f"{n}: {g:.1e}" for n, g in info.tried)
    return (
        f"| resnet18 3x{size}x{size}, {cells}x{cells} grid | adaptive (tol {tol:g}): "
        f"n_steps={info.n_steps} (gaps {tried}), {t_adaptive:.1f} s, gap "
        f"{float(info.relative_gap.max()):.1e} | n_steps=16: {t_fixed:.1f} s, gap "
        f"{gap16:.1e} | {t_fixed / t_adaptive:.1f}x | {err:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="1x4,2x4",
                        help="comma-separated BATCHxN_STEPS settings")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--adaptive", type=int, default=0,
                        help="batch of the n_steps=None row (0: none)")
    parser.add_argument("--resnet", default="",
                        help="SIZExCELLS of the resnet18 adaptive case (empty: none)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device: {args.device} ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repeats {args.repeats}")
    print("MLP 784-256-128-10 SoftPlus float32, zero baseline, objective 'output', "
          "gausslegendre, full 784 x 784 per sample")
    print()
    print("| batch | n_steps | implementation | path points / sample | median s | "
          "speed-up of IntegratedHessians | max abs diff / max entry |")
    print("|---|---|---|---|---|---|---|")
    for setting in filter(None, args.settings.split(",")):
        batch, n_steps = (int(v) for v in setting.lower().split("x"))
        print(run_setting(batch, n_steps, args.repeats, args.device), flush=True)
    if args.adaptive:
        print(run_adaptive(args.adaptive, args.repeats, args.device), flush=True)
    if args.resnet:
        size, cells = (int(v) for v in args.resnet.lower().split("x"))
        print()
        print("| model | n_steps=None | n_steps=16 | time 16 / adaptive | max abs diff / "
              "max entry |")
        print("|---|---|---|---|---|")
        print(run_resnet(size, cells, args.device), flush=True)


if __name__ == "__main__":
    main()
