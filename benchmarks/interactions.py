"""Interaction detection on the NID synthetic functions F1..F10 with cross derivatives.

Protocol (Lerman et al. 2021, "Explaining Local, Global, and Higher-Order
Interactions in Deep Learning", ICCV, after Tsang et al. 2018, "Detecting
Statistical Interactions from Neural Network Weights", ICLR): for each test
function, sample data from its domain, standardise inputs and target, train a
small MLP regressor, compute global pairwise interactions as the mean over
samples of ``|d^2 f / dx_i dx_j|`` (``CrossDerivatives.global_interactions``),
and score the ranking of all 45 pairs by ROC-AUC against the ground truth (a
pair is positive if it lies inside a ground-truth interaction set). The same
for the 120 triples (order 3).

Networks: ``10 -> 64 -> 64 -> 32 -> 1``, trained with Adam on MSE (cosine
learning-rate decay), smaller than NID's ``140-100-60-20`` to fit the time
budget (``--hidden 140,100,60,20`` restores it). Two activations:

* GELU, as Lerman et al.; its derivatives of every order are used as they are.
* ReLU: the trained network's Hessian of the output is zero almost everywhere,
  so it is explained through a smooth surrogate: the same weights with every
  ReLU replaced by ``Softplus(beta=10)`` (which tends to ReLU as beta grows).
  This is our choice; the curved-objective alternative (softmax family) does
  not apply to a scalar regressor.

Baseline measured in the same run, on the same GELU network: a NID-style
weight score (Tsang et al. 2018, pairwise form): ``z = |w_out|^T |W_L| ... |W_2|``
and ``strength(i, j) = sum_h z_h min(|W_1[h, i]|, |W_1[h, j]|)``. The paper
trains with L1 regularisation and main-effect networks, which we do not, so
this is a reference point, not a reproduction of NID's published numbers.

Defaults (float32, one intra-op thread: the layers are too small to gain from
more, and a second thread only contends): 10000 training samples, 60 epochs of
batch 128, 1000 held-out samples for global pairs and 300 for global triples,
seed 0. Tsang et al. use 30000 samples (1/3 each for train, validation, test)
and early stopping. See benchmarks/README.md for the timing.

Run ``python benchmarks/interactions.py --help``; ``--quick`` runs three
functions with fewer samples.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.zoo.synthetic import NID_FUNCTIONS, SyntheticFunction

HIDDEN = (64, 64, 32)


def make_mlp(
    num_features: int, hidden: Sequence[int] = HIDDEN, act: type = nn.GELU
) -> nn.Sequential:
    layers: List[nn.Module] = []
    width = num_features
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def standardise(x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    """Zero mean, unit variance per column (inputs) and for the target, as in
    Tsang et al.'s preprocessing."""
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    y = (y - y.mean()) / y.std().clamp_min(1e-12)
    return x, y


def make_data(
    f: SyntheticFunction, n_train: int, n_eval: int, seed: int
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y = f.sample(n_train + n_eval, seed=seed)
    x, y = standardise(x, y)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * ((len(x) + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for idx in perm.split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss = (model(x[idx]).squeeze(1) - y[idx]).square().mean()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def r2(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        pred = model(x).squeeze(1)
    return float(1 - (pred - y).square().mean() / y.var())


def softplus_surrogate(model: nn.Module, beta: float = 10.0) -> nn.Module:
    """A copy of ``model`` with every ReLU replaced by ``Softplus(beta)``."""
    smooth = copy.deepcopy(model)
    for module in list(smooth.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Softplus(beta=beta))
    return smooth.eval()


def nid_pairwise(model: nn.Sequential) -> Tensor:
    """NID-style pairwise weight score (Tsang et al. 2018) of an MLP, ``(F, F)``."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    first = linears[0].weight.detach().abs()  # (h1, F)
    z = linears[-1].weight.detach().abs()  # (1, h_L)
    for layer in reversed(linears[1:-1]):
        z = z @ layer.weight.detach().abs()
    z = z.squeeze(0)  # (h1,)
    pair_min = torch.minimum(first.unsqueeze(2), first.unsqueeze(1))  # (h1, F, F)
    return torch.einsum("h,hij->ij", z, pair_min)


def cross_derivative_aucs(
    model: nn.Module,
    f: SyntheticFunction,
    x_pairs: Tensor,
    x_triples: Optional[Tensor],
    batch_size: int = 250,
) -> Tuple[float, Optional[float]]:
    """Global mean-|cross derivative| AUC for pairs and (optionally) triples."""
    cd = CrossDerivatives(model)
    pairs = cd.global_interactions(x_pairs, order=2, batch_size=batch_size)
    auc2 = interaction_auc(pairs.scores, f.interactions, order=2)
    auc3 = None
    if x_triples is not None:
        triples = cd.global_interactions(x_triples, order=3, batch_size=batch_size)
        auc3 = interaction_auc(triples.scores, f.interactions, order=3)
    return auc2, auc3


def random_features_model(
    x: Tensor, y: Tensor, width: int = 512, ridge: float = 1e-3, seed: int = 0
) -> nn.Sequential:
    """Training-free smooth network: random GELU features, output layer by
    ridge regression in closed form (used by the test suite's smoke run)."""
    gen = torch.Generator().manual_seed(seed)
    model = make_mlp(x.shape[1], (width,), nn.GELU).to(x.dtype)
    with torch.no_grad():
        first, last = model[0], model[2]
        first.weight.copy_(torch.randn(width, x.shape[1], generator=gen, dtype=x.dtype))
        first.bias.copy_(2 * torch.rand(width, generator=gen, dtype=x.dtype) - 1)
        feats = model[1](first(x))
        feats1 = torch.cat([feats, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        gram = feats1.T @ feats1 + ridge * len(x) * torch.eye(width + 1, dtype=x.dtype)
        sol = torch.linalg.solve(gram, feats1.T @ y)
        last.weight.copy_(sol[:-1].unsqueeze(0))
        last.bias.copy_(sol[-1:])
    return model.eval()


def run(
    names: Sequence[str],
    n_train: int,
    epochs: int,
    n_pairs: int,
    n_triples: int,
    seed: int,
    activations: Sequence[str] = ("gelu", "relu"),
    hidden: Sequence[int] = HIDDEN,
) -> List[Dict[str, object]]:
    rows: List[Dict[str, object]] = []
    for name in names:
        f = NID_FUNCTIONS[name]
        x_tr, y_tr, x_ev, y_ev = make_data(f, n_train, max(n_pairs, n_triples), seed)
        row: Dict[str, object] = {"function": name}
        start = time.perf_counter()
        for act_name in activations:
            act = nn.GELU if act_name == "gelu" else nn.ReLU
            torch.manual_seed(seed)
            model = train(make_mlp(f.num_features, hidden, act), x_tr, y_tr, epochs, seed=seed)
            row[f"r2_{act_name}"] = r2(model, x_ev, y_ev)
            explained = model if act_name == "gelu" else softplus_surrogate(model)
            auc2, auc3 = cross_derivative_aucs(
                explained,
                f,
                x_ev[:n_pairs],
                x_ev[:n_triples] if act_name == "gelu" else None,
            )
            row[f"cd_{act_name}"] = auc2
            if auc3 is not None:
                row["cd3_gelu"] = auc3
            if act_name == "gelu":
                row["nid_gelu"] = interaction_auc(nid_pairwise(model), f.interactions, order=2)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


COLUMNS = [
    ("function", "function", "{}"),
    ("r2_gelu", "R2 GELU", "{:.3f}"),
    ("cd_gelu", "CD pairs GELU", "{:.3f}"),
    ("nid_gelu", "NID-style pairs GELU", "{:.3f}"),
    ("cd3_gelu", "CD triples GELU", "{:.3f}"),
    ("r2_relu", "R2 ReLU", "{:.3f}"),
    ("cd_relu", "CD pairs ReLU->SoftPlus(10)", "{:.3f}"),
    ("seconds", "s", "{:.1f}"),
]


def _format_row(row: Dict[str, object]) -> str:
    cells = []
    for key, _, fmt in COLUMNS:
        value = row.get(key)
        cells.append("-" if value is None else fmt.format(value))
    return "| " + " | ".join(cells) + " |"


def print_table(rows: List[Dict[str, object]]) -> None:
    print("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print(_format_row(row))
    mean: Dict[str, object] = {"function": "**mean**"}
    for key, _, _ in COLUMNS[1:]:
        values = [float(r[key]) for r in rows if r.get(key) is not None]  # type: ignore[arg-type]
        if values:
            mean[key] = sum(values) / len(values) if key != "seconds" else sum(values)
    print(_format_row(mean))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", default=",".join(NID_FUNCTIONS))
    parser.add_argument("--samples", type=int, default=10000, help="training samples")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--pairs-samples", type=int, default=1000)
    parser.add_argument("--triples-samples", type=int, default=300)
    parser.add_argument("--activations", default="gelu,relu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default=",".join(map(str, HIDDEN)))
    parser.add_argument("--quick", action="store_true", help="F1, F5, F10, small")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip().upper() for n in args.functions.split(",") if n.strip()]
    if args.quick:
        names, args.samples, args.epochs = ["F1", "F5", "F10"], 3000, 20
        args.pairs_samples, args.triples_samples = 500, 200
    print(
        f"# torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; "
        f"MLP {args.hidden}, {args.samples} training samples, {args.epochs} epochs, "
        f"{args.pairs_samples}/{args.triples_samples} samples for pairs/triples, "
        f"seed {args.seed}",
        flush=True,
    )
    start = time.perf_counter()
    rows = run(
        names, args.samples, args.epochs, args.pairs_samples, args.triples_samples, args.seed,
        tuple(a.strip() for a in args.activations.split(",")),
        tuple(int(h) for h in args.hidden.split(",")),
    )
    print()
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
