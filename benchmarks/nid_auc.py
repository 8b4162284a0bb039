"""What lifts the pairwise interaction AUC on the NID functions F1..F10?

A study of training recipes and aggregations for cross-derivative interaction
detection (Lerman et al. 2021, ICCV), with the data protocol of Tsang et al.
(2018, "Detecting Statistical Interactions from Neural Network Weights", ICLR):
30000 samples per function, standardised, split into thirds for training,
validation (early stopping) and test (interactions are computed on test
points), several seeds, mean +- std over seeds.

Two steps, so that the (slow) training runs once and every aggregation and
ensemble is scored from stored matrices:

``python benchmarks/nid_auc.py run --recipe base --seeds 0,1,2,3,4``
    trains one network per (function, seed) and appends one JSON line per
    network to ``benchmarks/results/nid/<recipe>.jsonl``: held-out R2 and the
    global ``(10, 10)`` interaction matrices of every explanation variant.

``python benchmarks/nid_auc.py report``
    prints the tables of ``benchmarks/README.md`` from those files: mean AUC
    over F1..F10 per seed, mean +- std over seeds, per-function means, and
    ensembles over seeds (the average of the seeds' max-normalised matrices).

Explanation variants of one trained network (``10 -> ... -> 1`` regressor):

* ``cd_mean_abs`` / ``cd_rms`` / ``cd_median``: ``CrossDerivatives`` local
  Hessians on 1000 test points, aggregated by mean |H|, root mean square, median |H|;
* ``eh``: mean |ExpectedHessians| (Janizek et al. 2021) over 250 test points,
  16 training points as references, 8 path points;
* ``smoothhess``: mean |SmoothHess| (Torop et al. 2023) over 250 test points,
  ``sigma`` 0.25 (inputs are standardised), 256 gradient calls each;
* ReLU recipes: ``cd_mean_abs`` etc. of the ``Softplus(beta=10)`` surrogate of the
  trained weights (``captum_higher_order.softplus_surrogate``) and ``smoothhess``
  of the ReLU network itself.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order import (
    CrossDerivatives,
    ExpectedHessians,
    SmoothHess,
    softplus_surrogate,
)
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.zoo.synthetic import NID_FUNCTIONS, SyntheticFunction

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "nid")


@dataclass(frozen=True)
class Recipe:
    """How one network is trained (Adam/AdamW on MSE, cosine learning-rate decay)."""

    hidden: Tuple[int, ...] = (64, 64, 32)
    activation: str = "gelu"
    epochs: int = 60
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    #: Keep the weights of the epoch with the lowest validation MSE.
    early_stopping: bool = False
    #: Train on the training and validation thirds (no early stopping then).
    train_on_validation: bool = False


RECIPES: Dict[str, Recipe] = {
    # The pipeline of benchmarks/interactions.py (mean pairwise AUC 0.928 on seed 0).
    "base": Recipe(),
    "long": Recipe(epochs=200, early_stopping=True),
    "wd": Recipe(weight_decay=1e-2, early_stopping=True),
    "nid": Recipe(hidden=(140, 100, 60, 20), epochs=100, early_stopping=True),
    "data": Recipe(train_on_validation=True),
    "long_data": Recipe(epochs=200, train_on_validation=True),
    "relu": Recipe(activation="relu", epochs=100, early_stopping=True),
}

N_TOTAL = 30000  # Tsang et al.: 30k samples, thirds for train / validation / test
N_CD = 1000
N_EH = 250


def make_mlp(num_features: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    act = {"gelu": nn.GELU, "relu": nn.ReLU}[activation]
    layers: List[nn.Module] = []
    width = num_features
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def split_data(f: SyntheticFunction, seed: int) -> Dict[str, Tensor]:
    """30000 standardised samples in thirds (train, validation, test)."""
    x, y = f.sample(N_TOTAL, seed=1000 + seed)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    third = N_TOTAL // 3
    return {
        "x_tr": x[:third], "y_tr": y[:third],
        "x_va": x[third:2 * third], "y_va": y[third:2 * third],
        "x_te": x[2 * third:], "y_te": y[2 * third:],
    }


def mse(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).squeeze(1) - y).square().mean())


def fit(recipe: Recipe, data: Dict[str, Tensor], seed: int) -> nn.Module:
    x, y = data["x_tr"], data["y_tr"]
    if recipe.train_on_validation:
        x, y = torch.cat([x, data["x_va"]]), torch.cat([y, data["y_va"]])
    torch.manual_seed(seed)
    model = make_mlp(x.shape[1], recipe.hidden, recipe.activation)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = (len(x) + recipe.batch_size - 1) // recipe.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs * steps_per_epoch)
    best, best_state = float("inf"), None
    for _ in range(recipe.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(recipe.batch_size):
            opt.zero_grad(set_to_none=True)
            (model(x[idx]).squeeze(1) - y[idx]).square().mean().backward()
            opt.step()
            sched.step()
        if recipe.early_stopping:
            model.eval()
            val = mse(model, data["x_va"], data["y_va"])
            if val < best:
                best, best_state = val, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def _off_diagonal_abs_mean(local: Tensor) -> Tensor:
    return local.abs().mean(0)


def explain(model: nn.Module, recipe: Recipe, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Global ``(F, F)`` interaction matrices of every variant for one network."""
    x_cd, x_eh = data["x_te"][:N_CD], data["x_te"][:N_EH]
    if recipe.activation == "relu":
        with softplus_surrogate(model) as smooth:
            local = CrossDerivatives(smooth).attribute(x_cd, absolute=False)
    else:
        local = CrossDerivatives(model).attribute(x_cd, absolute=False)
    out = {
        "cd_mean_abs": local.abs().mean(0),
        "cd_rms": local.square().mean(0).sqrt(),
        "cd_median": local.abs().median(0).values,
    }
    out["smoothhess"] = _off_diagonal_abs_mean(
        SmoothHess(model).attribute(x_eh, sigma=0.25, n_samples=256, generator=0)
    )
    if recipe.activation != "relu":
        refs = data["x_tr"][:16]
        out["eh"] = _off_diagonal_abs_mean(
            ExpectedHessians(model).attribute(x_eh, refs, n_steps=8)
        )
    return out


def r2(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return 1.0 - mse(model, x, y) / float(y.var())


def run(recipe_name: str, names: Sequence[str], seeds: Sequence[int], out: str) -> None:
    recipe = RECIPES[recipe_name]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    for seed in seeds:
        for name in names:
            f = NID_FUNCTIONS[name]
            start = time.perf_counter()
            data = split_data(f, seed)
            model = fit(recipe, data, seed)
            trained = time.perf_counter() - start
            scores = explain(model, recipe, data)
            row = {
                "recipe": recipe_name, "settings": asdict(recipe), "function": name,
                "seed": seed, "r2_test": r2(model, data["x_te"], data["y_te"]),
                "train_s": trained, "explain_s": time.perf_counter() - start - trained,
                "scores": {k: v.tolist() for k, v in scores.items()},
            }
            aucs = {k: interaction_auc(v, f.interactions) for k, v in scores.items()}
            print(f"{recipe_name} seed {seed} {name} r2 {row['r2_test']:.4f} "
                  + " ".join(f"{k} {v:.3f}" for k, v in aucs.items())
                  + f" ({trained:.0f}+{row['explain_s']:.0f} s)", flush=True)
            with open(out, "a") as fh:
                fh.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------- report


def load(path: str) -> List[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _auc(row: dict, variant: str) -> float:
    f = NID_FUNCTIONS[row["function"]]
    return interaction_auc(torch.tensor(row["scores"][variant]), f.interactions)


def _ensemble_auc(rows: List[dict], variant: str) -> float:
    """AUC of the mean of the seeds' matrices, each scaled to max 1 off the diagonal."""
    mats = []
    for row in rows:
        m = torch.tensor(row["scores"][variant], dtype=torch.float64)
        m = m - torch.diag(torch.diag(m))
        mats.append(m / m.max().clamp_min(1e-30))
    f = NID_FUNCTIONS[rows[0]["function"]]
    return interaction_auc(torch.stack(mats).mean(0), f.interactions)


def oracle_aucs(variant: str = "mean_abs") -> Dict[str, float]:
    """The same aggregation of the exact cross derivatives of the functions
    themselves (on standardised inputs): the ceiling of a perfect network."""
    out = {}
    for name, f in NID_FUNCTIONS.items():
        x, _ = f.sample(N_CD, seed=1, dtype=torch.float64)
        local = CrossDerivatives(f).attribute(x).nan_to_num(0.0)
        std = x.std(0)
        out[name] = interaction_auc((local * std.view(1, -1, 1) * std).mean(0), f.interactions)
    return out


def report(paths: Sequence[str]) -> None:
    names = list(NID_FUNCTIONS)
    print("| recipe | variant | seeds | mean AUC (mean +- std over seeds) | ensemble of seeds | "
          + " | ".join(names) + " | R2 |")
    print("|" + "---|" * (6 + len(names)))
    for path in paths:
        rows = load(path)
        if not rows:
            continue
        recipe = rows[0]["recipe"]
        seeds = sorted({r["seed"] for r in rows})
        complete = [s for s in seeds if {r["function"] for r in rows if r["seed"] == s}
                    >= set(names)]
        for variant in rows[0]["scores"]:
            per_seed = [
                statistics.mean(_auc(r, variant) for r in rows if r["seed"] == s)
                for s in complete
            ]
            per_fn = [
                statistics.mean(_auc(r, variant) for r in rows if r["function"] == n
                                and r["seed"] in complete) if complete else float("nan")
                for n in names
            ]
            ens = statistics.mean(
                _ensemble_auc([r for r in rows if r["function"] == n
                               and r["seed"] in complete], variant) for n in names
            ) if len(complete) > 1 else float("nan")
            std = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
            r2s = statistics.mean(r["r2_test"] for r in rows if r["seed"] in complete)
            print(f"| {recipe} | {variant} | {len(complete)} | "
                  f"{statistics.mean(per_seed):.3f} +- {std:.3f} | {ens:.3f} | "
                  + " | ".join(f"{v:.3f}" for v in per_fn) + f" | {r2s:.4f} |")
    oracle = oracle_aucs()
    print(f"| exact f (ceiling) | cd_mean_abs | - | {statistics.mean(oracle.values()):.3f} | - | "
          + " | ".join(f"{oracle[n]:.3f}" for n in names) + " | 1 |")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and store the interaction matrices")
    p_run.add_argument("--recipe", choices=sorted(RECIPES), default="base")
    p_run.add_argument("--functions", default=",".join(NID_FUNCTIONS))
    p_run.add_argument("--seeds", default="0,1,2,3,4")
    p_run.add_argument("--out", default=None, help="default: results/nid/<recipe>.jsonl")
    p_run.add_argument("--threads", type=int, default=1)
    p_rep = sub.add_parser("report", help="print the tables from stored results")
    p_rep.add_argument("paths", nargs="*", help="default: every results/nid/*.jsonl")
    args = parser.parse_args(argv)
    if args.command == "run":
        torch.set_num_threads(args.threads)
        out = args.out or os.path.join(RESULTS, f"{args.recipe}.jsonl")
        names = [n.strip().upper() for n in args.functions.split(",") if n.strip()]
        seeds = [int(s) for s in args.seeds.split(",")]
        start = time.perf_counter()
        run(args.recipe, names, seeds, out)
        print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)
    else:
        paths = args.paths or sorted(
            os.path.join(RESULTS, p) for p in os.listdir(RESULTS) if p.endswith(".jsonl")
        )
        report(paths)


if __name__ == "__main__":
    main()

