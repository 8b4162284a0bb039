"""Benchmark: the cost of one solver HVP in SecondOrderSaliency and GroupSparseSaliency.

Issue 20 item 1 measures an iterative solver by the wall time of the whole call
divided by its number of Hessian-vector products, over the time of one batched
input gradient of the same loss measured in the same run (so "1.0" means a
solver HVP costs what a gradient costs). Rows:

* ``SecondOrderSaliency``: the library's path, ``lambda_max`` and the shifted
  solve from one block Krylov space (two vectors per pass), the gradient taken
  from the first-order graph the HVPs reuse;
* ``Lanczos then CG (round 1)``: the previous path rebuilt from the engine's
  public parts: a separate gradient, Lanczos from a random start, then
  conjugate gradients, one vector per pass, each phase on its own operator;
* ``GroupSparseSaliency``: Lanczos, then FISTA (one vector per step).

Both CASO rows solve the same problem to the methods' default tolerances; the
table gives their maximum relative difference. Peak memory is the extra
resident memory of the call (CPU, Linux ``VmHWM``) or the CUDA peak allocation.

Run: ``python benchmarks/solver_hvps.py [--quick] [--device cuda] [--repeats N]``
"""

from __future__ import annotations

import argparse
import platform
import warnings
from functools import partial
from typing import Callable, Dict, List

import torch
from timing import median_time, peak_memory
from torch import nn

from captum_higher_order import GroupSparseSaliency, SecondOrderSaliency
from captum_higher_order.attr.second_order_saliency import default_tols
from captum_higher_order.hessian import value_and_grad
from captum_higher_order.hessian.cg import conjugate_gradients
from captum_higher_order.hessian.engine import Engine, HessianOperator, make_problem
from captum_higher_order.hessian.lanczos import lanczos


def round_one(model: nn.Module, x, target, lambda2: float) -> Dict[str, object]:
    """Gradient, Lanczos (random start, one vector per pass), then CG."""
    problem = make_problem(model, x, target, None, "cross_entropy", "rev_rev")
    _, g = value_and_grad(model, x, target, None, "cross_entropy")
    g = g.reshape(g.shape[0], -1)
    cg_tol, eig_tol = default_tols(g.dtype, None, None)
    eig_op = HessianOperator(Engine(problem, "rev_rev"))
    values, _, _, _ = lanczos(eig_op, 1, "LA", eig_tol, min(g.shape[1], 60), seed=0)
    lam = values[:, 0] + lambda2
    cg_op = HessianOperator(Engine(problem, "rev_rev"))
    result = conjugate_gradients(lambda v: lam.unsqueeze(1) * v - cg_op.matvec(v), g,
                                 cg_tol, 500)
    return {"d": result.solution, "hvps": eig_op.hvps + cg_op.hvps,
            "passes": eig_op.passes + cg_op.passes}


def models(device: str, quick: bool, only: str = ""):
    import torchvision

    names = ["resnet18"] if quick else ["resnet18", "resnet50"]
    if only:
        names = only.split(",")
    for name in names:
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).to(device).eval()
        # x5: confident enough predictions for a Hessian above float32 rounding
        # (see benchmarks/caso.py).
        yield name, model, 5.0 * torch.randn(2, 3, 64, 64, device=device)


def measure(name: str, model: nn.Module, x, device: str, repeats: int) -> List[Dict]:
    target = model(x).argmax(1).tolist()

    def gradient() -> None:
        value_and_grad(model, x, target, None, "cross_entropy")

    t_grad = median_time(gradient, repeats, device)
    rows = []
    for lambda2 in (4.0, 2e-4):
        caso = SecondOrderSaliency(model)
        runs: Dict[str, Callable[[], Dict[str, object]]] = {
            "SecondOrderSaliency": partial(_caso, caso, x, target, lambda2),
            "Lanczos then CG (round 1)": partial(round_one, model, x, target, lambda2),
            "GroupSparseSaliency": partial(_gss, model, x, target, lambda2),
        }
        results, row_of = {}, {}
        for label, run in runs.items():
            try:
                seconds = median_time(run, repeats, device)
            except ValueError as err:  # round 1: lambda_max underestimated, shift not PD
                rows.append({"model": name, "lambda2": lambda2, "solver": label,
                             "failed": str(err).split(":")[0]})
                continue
            out, peak = peak_memory(run, device)
            results[label] = out
            row_of[label] = {"model": name, "lambda2": lambda2, "solver": label,
                             "seconds": seconds, "grad": t_grad, "hvps": out["hvps"],
                             "passes": out["passes"], "peak_mib": peak}
            rows.append(row_of[label])
        if "Lanczos then CG (round 1)" in results and "SecondOrderSaliency" in results:
            ref = results["Lanczos then CG (round 1)"]["d"]
            diff = results["SecondOrderSaliency"]["d"] - ref
            row_of["SecondOrderSaliency"]["agreement"] = float(
                diff.norm(dim=1).max() / ref.norm(dim=1).max())
    return rows


def _caso(caso: SecondOrderSaliency, x, target, lambda2: float) -> Dict[str, object]:
    d = caso.attribute(x, target=target, lambda2=lambda2)
    info = caso.last_info
    assert info is not None
    return {"d": d.reshape(d.shape[0], -1), "hvps": info.hvps, "passes": info.passes}


def _gss(model: nn.Module, x, target, lambda2: float) -> Dict[str, object]:
    gss = GroupSparseSaliency(model)
    gss.attribute(x, target=target, lambda2=lambda2)
    info = gss.last_info
    assert info is not None
    return {"hvps": info.hvps, "passes": info.hvps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="resnet18 only, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="", help="comma-separated torchvision names")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"device={args.device}, threads={torch.get_num_threads()}")
    print("\n| model | lambda2 | solver | call / gradient | HVPs (passes) | "
          "call / HVP / gradient | peak MiB | rel. diff to round 1 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, model, x in models(args.device, args.quick, args.models):
        for r in measure(name, model, x, args.device, repeats):
            if "failed" in r:
                print(f"| {r['model']} 3x64x64 b2 | {r['lambda2']:g} | {r['solver']} | "
                      f"failed: {r['failed']} | | | | |", flush=True)
                continue
            per_hvp = r["seconds"] / max(r["hvps"], 1) / r["grad"]
            agree = f"{r['agreement']:.1e}" if "agreement" in r else ""
            print(f"| {r['model']} 3x64x64 b2 | {r['lambda2']:g} | {r['solver']} | "
                  f"{r['seconds'] / r['grad']:.1f} | {r['hvps']} ({r['passes']}) | "
                  f"{per_hvp:.2f} | {r['peak_mib']:.0f} | {agree} |", flush=True)


if __name__ == "__main__":
    main()
