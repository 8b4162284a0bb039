"""Benchmark: CASO solved exactly (CG / FISTA) versus 10 fixed proximal steps.

The authors' public CASO code (Singla et al., ICML 2019) runs a fixed number of
proximal-gradient steps (10) on

    F(d) = -g^T d + 1/2 d^T (lambda2_eff I - H) d + lambda1 ||d||_1 .

SecondOrderSaliency solves the lambda1 = 0 problem by conjugate gradients and
GroupSparseSaliency the L1 problem by FISTA with restart, both to a stated
tolerance. For each model this prints, per solver: wall time, batched
Hessian-vector products (HVPs), the objective F (lower is better), its gap to
the best value found, the optimality residual, and the time ratio against the
10-step baseline measured in the same run. ``lambda_max`` (Lanczos) is
computed once per model and shared by all solvers; its cost is listed apart.

Models (no download):

* torchvision resnet18 (``weights=None``: random weights) at 3x64x64;
* a small CNN trained here on scikit-learn's digits (8x8, a few seconds).

Two ridges: the paper's default ``lambda2 = 4`` and ``lambda2 = 0.01 lambda_max``
(largest in the batch; condition number up to about 100, the regime where curvature shapes the
map and a fixed step count falls short), both in "shift" mode
(``lambda2_eff = lambda_max + lambda2``). Two sparsity levels: ``lambda1 = 0``
(SecondOrderSaliency, CG) and ``lambda1 = 0.5 max|g|`` (GroupSparseSaliency,
FISTA). Solver tolerances are the methods' defaults (relative residual 1e-8
in float64, 1e-4 in float32).

Both are piecewise linear (ReLU, max-pool, eval batch-norm), so H is PSD and
``lambda2_eff`` bounds the Lipschitz constant: the 10-step baseline uses the
step ``1 / lambda2_eff``, its best safe constant step.

Run: ``python benchmarks/caso.py [--quick] [--device cuda] [--threads N]``
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable, Dict, List

import torch
from torch import Tensor, nn

from captum_higher_order.attr.group_sparse_saliency import (
    Prox,
    caso_objective,
    fista,
    proximal_steps,
)
from captum_higher_order.attr.second_order_saliency import (
    caso_problem,
    convex_ridge,
    default_tols,
    hessian_operator,
)
from captum_higher_order.hessian import solve


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


# --------------------------------------------------------------------------- models


def resnet18_case(device: str, batch: int):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).to(device).eval()
    # Inputs x5: with random weights and unit inputs p is ~uniform over 1000
    # classes and lambda_max(H) ~ 5e-6, at float32 rounding level; at x5 the
    # predictions are confident enough for a measurable Hessian.
    x = 5.0 * torch.randn(batch, 3, 64, 64, device=device)
    return "resnet18 3x64x64 (random weights, float32)", model, x


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def digits_case(device: str, batch: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(labels), generator=gen)
    train, test = perm[:1500], perm[1500:]
    torch.manual_seed(0)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):  # epochs
        for idx in train[torch.randperm(len(train), generator=gen)].split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(images[idx]), labels[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(images[test]).argmax(1) == labels[test]).float().mean())
    for p in model.parameters():
        p.grad = None
    # float64: tiny model, and the solver comparison is not blurred by float32
    # rounding on very confident samples.
    model = model.to(device).double()
    x = images[test[:batch]].to(device).double()
    return f"digits CNN 1x8x8 (trained, test acc {acc:.3f}, float64)", model, x


# --------------------------------------------------------------------------- solvers


def compare(model, x, problem, operator, g, lam_eff, lam1, device, mode):
    """The 10-step baseline and the exact solver on one problem; rows of
    (solver, d, seconds, HVPs)."""
    prox = Prox(None, g.shape[0], g)
    tol, _ = default_tols(g.dtype, None, None)  # the methods' defaults

    def apply_a(v: Tensor) -> Tensor:
        return lam_eff.unsqueeze(1) * v - operator.matvec(v)

    results = []
    start = operator.passes
    d10, t10 = timed(lambda: proximal_steps(apply_a, g, lam1, prox, lam_eff, 10), device)
    results.append(("10 prox steps", d10, t10, operator.passes - start))
    if not bool(lam1.any()):
        res, t_cg = timed(lambda: solve(
            model, x, g.view_as(x), shift=lam_eff, target=problem.target,
            objective="cross_entropy", mode=mode, tol=tol, max_iter=500), device)
        results.append(("CG (SecondOrderSaliency)", res.solution.reshape(g.shape), t_cg,
                        res.hvps))
    else:
        out, t_f = timed(lambda: fista(apply_a, g, lam1, prox, lam_eff.clone(), tol, 500),
                         device)
        results.append(("FISTA (GroupSparseSaliency)", out[0], t_f, out[3]))
    scored = []
    for key, d, t, hvps in results:
        f = caso_objective(apply_a, g, lam1, prox, d)
        # Optimality: the prox-gradient mapping at d, relative to ||g||.
        step = prox(d - (apply_a(d) - g) / lam_eff.unsqueeze(1), lam1 / lam_eff)
        resid = lam_eff * (d - step).norm(dim=1) / g.norm(dim=1)
        scored.append((key, d, t, hvps, f, resid))
    best = torch.stack([s[4] for s in scored]).amin(0)
    return [
        {"solver": key, "time_s": t, "ratio": t / t10, "hvps": hvps,
         "objective": float(f.mean()), "gap": float(((f - best) / best.abs()).mean()),
         "residual": float(resid.max()), "sparsity": float((d == 0).double().mean())}
        for key, d, t, hvps, f, resid in scored
    ]


def hvp_seconds(problem, g, mode: str, device: str, repeats: int = 3) -> float:
    operator = hessian_operator(problem, mode)
    operator.matvec(g)  # warm-up (and graph build for rev_rev)
    _, t = timed(lambda: [operator.matvec(g) for _ in range(repeats)], device)
    return t / repeats


def run_case(name, model, x, device, lambda2s: List, mode: str) -> List[Dict]:
    problem, g, operator = caso_problem(model, x, None, None, "cross_entropy", mode)
    per_hvp = {m: hvp_seconds(problem, g, m, device) for m in ("rev_rev", "fwd_rev")}
    eig_tol = default_tols(g.dtype, None, None)[1]
    (lambda_max, _), eig_s = timed(
        lambda: convex_ridge(problem, operator, 1.0, "shift", eig_tol, None), device)
    print(f"\n{name}: F={g.shape[1]}, batch={g.shape[0]}, lambda_max="
          f"{[float(f'{v:.3g}') for v in lambda_max]}, Lanczos {eig_s:.2f} s / "
          f"{operator.passes} HVPs; s per HVP: rev_rev {per_hvp['rev_rev']:.4f}, "
          f"fwd_rev {per_hvp['fwd_rev']:.4f}")
    rows: List[Dict] = []
    short = name.split(" (")[0]
    for lambda2 in lambda2s:
        # A float is the paper's absolute lambda2; a string "0.01" means
        # 0.01 * (largest lambda_max in the batch): the curvature-dominated
        # regime (condition number up to about 100), whatever the model's
        # Hessian scale. (Per sample it would drop below float32 rounding for
        # very confident samples, whose lambda_max is ~0.)
        top = float(lambda_max.max())
        lam2 = lambda2 if isinstance(lambda2, float) else float(lambda2) * top
        label = lambda2 if isinstance(lambda2, float) else f"{float(lam2):.3g}"
        for lam1_frac in (0.0, 0.5):
            lam1 = lam1_frac * g.abs().amax(1)
            for row in compare(model, x, problem, operator, g, lambda_max + lam2, lam1,
                               device, mode):
                row.update(model=short, lambda2=label,
                           lambda1="0" if lam1_frac == 0 else "0.5 max(abs g)")
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="digits CNN only")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (1 is fastest on a shared CPU)")
    parser.add_argument("--mode", default="rev_rev", help="HVP mode of the engine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"device={args.device}, threads={torch.get_num_threads()}, mode={args.mode}")
    lambda2s = [4.0, "0.01"]
    cases = [digits_case(args.device, 8)]
    if not args.quick:
        cases.append(resnet18_case(args.device, 2))
    rows: List[Dict] = []
    for name, model, x in cases:
        rows += run_case(name, model, x, args.device, lambda2s, args.mode)
    header = ("| model | lambda2 | lambda1 | solver | time (s) | time / 10-step | HVPs | "
              "objective | rel. gap to best | opt. residual | sparsity |")
    print("\n" + header)
    print("|" + "---|" * 11)
    for r in rows:
        print(f"| {r['model']} | {r['lambda2']} | {r['lambda1']} | {r['solver']} | "
              f"{r['time_s']:.3f} | {r['ratio']:.2f} | {r['hvps']} | {r['objective']:.6g} | "
              f"{r['gap']:.2e} | {r['residual']:.1e} | {r['sparsity']:.2f} |")


if __name__ == "__main__":
    main()
