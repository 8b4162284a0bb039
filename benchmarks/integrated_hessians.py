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

Run: ``python benchmarks/integrated_hessians.py [--settings 1x4,2x4]
[--repeats 2] [--device cpu|cuda]`` (settings are BATCHxN_STEPS).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Tuple

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="1x4,2x4",
                        help="comma-separated BATCHxN_STEPS settings")
    parser.add_argument("--repeats", type=int, default=2)
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
    for setting in args.settings.split(","):
        batch, n_steps = (int(v) for v in setting.lower().split("x"))
        print(run_setting(batch, n_steps, args.repeats, args.device), flush=True)


if __name__ == "__main__":
    main()
