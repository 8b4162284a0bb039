"""Our interaction methods against what users pick instead: shapiq and path_explain.

Three families of models, the same explained samples for every method:

* **NID** F1..F10 (Tsang et al. 2018): a GELU MLP per function (and a ReLU one
  for SmoothHess), trained by ``benchmarks/nid_auc.py``'s ``base`` recipe on
  10000 standardised samples; ground truth: the functions' interaction sets.
* **planted**: the zoo's planted-interaction GELU MLP
  (``captum_higher_order.zoo.load_planted_mlp``), ground truth ``PLANTED_PAIRS``.
* **digits**: the zoo's ReLU digits CNN, a grid of 16 patches (2x2 pixels) as
  players, the explained score the log-softmax of the predicted class, patches
  removed by setting them to 0 (black). No ground truth: the score is the
  Spearman correlation of the 120 patch-pair magnitudes with shapiq's k-SII at
  a large budget (``REFERENCE_BUDGET``), per sample, averaged.

Methods (ours through the public API; time = wall time of one batched call / samples):
``CrossDerivatives`` (exact Hessian at x), ``IntegratedHessians`` (zero / mean
baseline, ``n_steps`` path points), ``ExpectedHessians`` (training rows as
references), ``SmoothHess`` (ReLU networks, Gaussian ``sigma``, ``n_samples``
gradients). Peers: shapiq 1.4 ``TabularExplainer`` (marginal imputer over 100
training rows, its default) with k-SII (KernelSHAP-IQ) and FSII (regression)
at several budgets, and the same approximators on the patch game for digits;
path_explain's ``PathExplainerTorch.interactions`` (Expected Hessians by
sampling; its module is loaded from its file, since the package ``__init__``
imports TensorFlow).

Score: the global matrix is the mean over the explained samples of
``|interaction|`` per pair; AUC over all pairs as in ``benchmarks/interactions.py``.

Run ``python benchmarks/peers.py`` (full) or ``--quick`` (planted MLP and two
digits, about a minute); ``--json`` writes every point, ``--plot`` the figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_higher_order import (
    CrossDerivatives,
    ExpectedHessians,
    IntegratedHessians,
    SmoothHess,
    softplus_surrogate,
)
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.zoo import (
    PLANTED_PAIRS,
    digits_samples,
    load_digits_cnn,
    load_planted_mlp,
    sample_inputs,
)
from captum_higher_order.zoo.synthetic import NID_FUNCTIONS

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from nid_auc import RECIPES, fit, split_data  # noqa: E402

REFERENCE_BUDGET = 8192


@dataclass
class Point:
    """One method at one setting on one case."""

    family: str
    case: str
    method: str
    setting: str
    seconds_per_sample: float
    auc: Optional[float] = None
    agreement: Optional[float] = None
    extra: Dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- peers


def load_path_explainer() -> Any:
    """path_explain's ``PathExplainerTorch`` without importing its package ``__init__``."""
    spec = importlib.util.find_spec("path_explain")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("path_explain is not installed: pip install path-explain --no-deps")
    path = os.path.join(
        list(spec.submodule_search_locations)[0], "explainers", "path_explainer_torch.py"
    )
    mod_spec = importlib.util.spec_from_file_location("_path_explainer_torch", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.PathExplainerTorch


def pair_matrix(iv: Any, size: int) -> Tensor:
    """The ``(F, F)`` symmetric matrix of a shapiq ``InteractionValues``' pairs."""
    out = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for j in range(i + 1, size):
            out[i, j] = out[j, i] = float(iv[(i, j)])
    return out


def timed(fn: Callable[[], Tensor], n: int) -> Tuple[Tensor, float]:
    """``fn()`` and its wall time per sample, after one untimed warm-up call (the
    first call of a method pays one-off costs: vmap tracing, allocator growth)."""
    fn()
    start = time.perf_counter()
    local = fn()
    return local.detach().to(torch.float64), (time.perf_counter() - start) / n


def shapiq_tabular(
    predict: Callable[[np.ndarray], np.ndarray], background: np.ndarray, x: np.ndarray,
    index: str, budget: int,
) -> Tuple[Tensor, float]:
    import shapiq

    explainer = shapiq.TabularExplainer(
        predict, data=background, index=index, max_order=2, random_state=0
    )
    start = time.perf_counter()
    mats = [pair_matrix(explainer.explain(x[i : i + 1], budget=budget, random_state=i),
                        x.shape[1]) for i in range(len(x))]
    return torch.stack(mats), (time.perf_counter() - start) / len(x)


def shapiq_game(game: Callable[[np.ndarray], np.ndarray], n: int, index: str,
                budget: int, seed: int) -> Tensor:
    import shapiq

    if index == "k-SII":
        approx = shapiq.KernelSHAPIQ(n=n, max_order=2, index="k-SII", random_state=seed)
    else:
        approx = shapiq.RegressionFSII(n=n, max_order=2, random_state=seed)
    return pair_matrix(approx.approximate(budget, game), n)


def as_predict(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.as_tensor(x, dtype=torch.float32)).reshape(len(x), -1)[:, 0]
        return out.double().numpy()

    return predict


# ----------------------------------------------------------------------------- scoring


def global_abs(local: Tensor) -> Tensor:
    return local.abs().mean(0)


def spearman(a: Tensor, b: Tensor) -> float:
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    rho = float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-30))
    return max(-1.0, min(1.0, rho))  # rounding can step past +-1


def upper(m: Tensor) -> Tensor:
    rows, cols = torch.triu_indices(m.shape[-1], m.shape[-1], offset=1)
    return m[..., rows, cols]


def top_overlap(a: Tensor, b: Tensor, k: int) -> float:
    """Fraction of the ``k`` strongest pairs of ``a`` that are among ``b``'s ``k`` strongest."""
    ta = set(upper(a).abs().topk(k).indices.tolist())
    tb = set(upper(b).abs().topk(k).indices.tolist())
    return len(ta & tb) / k


# ----------------------------------------------------------------------------- tabular


@dataclass
class Tabular:
    """One tabular case: a smooth model, optionally a ReLU twin, data and truth."""

    family: str
    case: str
    model: nn.Module
    x: Tensor  # explained samples
    background: Tensor  # references (EH, path_explain, shapiq's imputer)
    truth: Sequence[Sequence[int]]
    relu_model: Optional[nn.Module] = None


def softplus_cross_derivatives(relu: nn.Module, x: Tensor) -> Tensor:
    """Cross derivatives of a ReLU network with its ReLUs swapped for Softplus(10)."""
    with softplus_surrogate(relu) as smooth:
        return CrossDerivatives(smooth).attribute(x)


def explain_tabular(case: Tabular, cfg: Dict[str, Any]) -> List[Point]:
    x, refs, n = case.x, case.background, len(case.x)
    ours: List[Tuple[str, str, Callable[[], Tensor]]] = [
        ("CrossDerivatives", "exact", lambda: CrossDerivatives(case.model).attribute(x)),
    ]
    base = refs.mean(0, keepdim=True)
    for steps in cfg["ih_steps"]:
        ours.append(("IntegratedHessians", f"n_steps={steps}", lambda s=steps:
                     IntegratedHessians(case.model).attribute(x, base, n_steps=s)))
    for m in cfg["eh_refs"]:
        ours.append(("ExpectedHessians", f"refs={m}, n_steps=4", lambda m=m:
                     ExpectedHessians(case.model).attribute(
                         x, refs, n_references=m, n_steps=4, seed=0)))
    if case.relu_model is not None:
        relu = case.relu_model
        for s in cfg["sh_samples"]:
            ours.append(("SmoothHess (ReLU net)", f"n={s}", lambda s=s:
                         SmoothHess(relu).attribute(x, sigma=0.25, n_samples=s, generator=0)))
        ours.append(("CrossDerivatives (ReLU->SoftPlus)", "exact",
                     lambda: softplus_cross_derivatives(relu, x)))
    points, mats = [], {}
    for method, setting, fn in ours:
        local, sec = timed(fn, n)
        mats[(method, setting)] = global_abs(local)
        points.append(Point(case.family, case.case, method, setting, sec,
                            interaction_auc(mats[(method, setting)], case.truth)))
    # path_explain wants a (B, 1) output and an input that requires grad.
    explainer = load_path_explainer()(lambda z: case.model(z).reshape(len(z), 1))
    for ns in cfg["pe_samples"]:
        np.random.seed(0)
        torch.manual_seed(0)
        local, sec = timed(lambda ns=ns: explainer.interactions(
            x.clone().requires_grad_(True), refs, num_samples=ns, use_expectation=True,
            verbose=False), n)
        points.append(Point(case.family, case.case, "path_explain EH", f"num_samples={ns}",
                            sec, interaction_auc(global_abs(local), case.truth)))
    predict, bg = as_predict(case.model), refs[:100].numpy()
    for index in ("k-SII", "FSII"):
        for budget in cfg["budgets"]:
            local, sec = shapiq_tabular(predict, bg, x.numpy(), index, budget)
            mats[(f"shapiq {index}", str(budget))] = global_abs(local)
            points.append(Point(case.family, case.case, f"shapiq {index}", f"budget={budget}",
                                sec, interaction_auc(global_abs(local), case.truth)))
    _agreement(points, mats, len({frozenset(p) for s in case.truth
                                  for p in _pairs(s)}), max(cfg["budgets"]))
    return points


def _pairs(s: Sequence[int]) -> List[Tuple[int, int]]:
    s = sorted(s)
    return [(a, b) for i, a in enumerate(s) for b in s[i + 1:]]


def _agreement(points: List[Point], mats: Dict[Tuple[str, str], Tensor], k: int,
               budget: int) -> None:
    """Spearman of pair magnitudes and top-k overlap with shapiq k-SII at its largest budget."""
    ref = mats[("shapiq k-SII", str(budget))]
    for p in points:
        key = (p.method, p.setting.split("=")[-1] if p.method.startswith("shapiq")
               else p.setting)
        if key in mats:
            p.agreement = spearman(upper(mats[key]), upper(ref))
            p.extra["top_overlap"] = top_overlap(mats[key], ref, max(1, min(k, 10)))


def nid_cases(names: Sequence[str], n_explain: int) -> List[Tabular]:
    cases = []
    for name in names:
        f = NID_FUNCTIONS[name]
        data = split_data(f, seed=0)
        gelu = fit(RECIPES["base"], data, seed=0)
        relu = fit(replace(RECIPES["base"], activation="relu"), data, seed=0)
        cases.append(Tabular("NID", name, gelu, data["x_te"][:n_explain], data["x_tr"][:200],
                             [sorted(s) for s in f.interactions], relu))
    return cases


def planted_case(n_explain: int) -> Tabular:
    return Tabular("planted", "planted MLP", load_planted_mlp(), sample_inputs(n_explain, seed=11),
                   sample_inputs(200, seed=12), [list(p) for p in PLANTED_PAIRS])


# ----------------------------------------------------------------------------- digits


def patch_mask() -> Tensor:
    """``(1, 1, 8, 8)`` ids of a 4x4 grid of 2x2-pixel patches."""
    rows = torch.arange(8) // 2
    return (rows.view(8, 1) * 4 + rows.view(1, 8)).view(1, 1, 8, 8)


def digits_game(model: nn.Module, x: Tensor, target: int) -> Callable[[np.ndarray], np.ndarray]:
    onehot = nn.functional.one_hot(patch_mask().flatten(), 16).T.float()  # (16, 64)

    def game(coalitions: np.ndarray) -> np.ndarray:
        keep = torch.as_tensor(coalitions, dtype=torch.float32) @ onehot
        with torch.no_grad():
            out = [torch.log_softmax(model(chunk.view(-1, 1, 8, 8) * x), 1)[:, target]
                   for chunk in keep.split(8192)]
        return torch.cat(out).double().numpy()

    return game


def explain_digits(n_explain: int, cfg: Dict[str, Any]) -> List[Point]:
    model = load_digits_cnn()
    images, _ = digits_samples()
    x = images[:n_explain]
    with torch.no_grad():
        target = model(x).argmax(1)
    mask = patch_mask()
    kw = {"target": target, "objective": "log_softmax", "feature_mask": mask}
    ours: List[Tuple[str, str, Callable[[], Tensor]]] = [
        ("CrossDerivatives", "exact", lambda: CrossDerivatives(model).attribute(x, **kw)),
    ]
    for steps in cfg["ih_steps"]:
        ours.append(("IntegratedHessians", f"n_steps={steps}", lambda s=steps:
                     IntegratedHessians(model).attribute(x, n_steps=s, **kw)))
    for s in cfg["sh_samples"]:
        ours.append(("SmoothHess (ReLU net)", f"n={s}", lambda s=s: SmoothHess(model).attribute(
            x, sigma=0.1, n_samples=s, generator=0, **kw)))
    games = [digits_game(model, x[b : b + 1], int(target[b])) for b in range(n_explain)]
    ref = torch.stack([shapiq_game(g, 16, "k-SII", cfg["reference_budget"], 0) for g in games])
    points = []

    def score(method: str, setting: str, local: Tensor, sec: float) -> None:
        rho = statistics.mean(spearman(upper(local[b].abs()), upper(ref[b].abs()))
                              for b in range(n_explain))
        top = statistics.mean(top_overlap(local[b], ref[b], 5) for b in range(n_explain))
        points.append(Point("digits", "digits CNN, 16 patches", method, setting, sec,
                            agreement=rho, extra={"top_overlap": top}))

    for method, setting, fn in ours:
        local, sec = timed(fn, n_explain)
        score(method, setting, local, sec)
    for index in ("k-SII", "FSII"):
        for budget in cfg["digits_budgets"]:
            start = time.perf_counter()
            local = torch.stack([shapiq_game(g, 16, index, budget, 1 + b)
                                 for b, g in enumerate(games)])
            score(f"shapiq {index}", f"budget={budget}", local,
                  (time.perf_counter() - start) / n_explain)
    return points


# ----------------------------------------------------------------------------- summary

OURS = ("CrossDerivatives", "IntegratedHessians", "ExpectedHessians", "SmoothHess")


def is_ours(method: str) -> bool:
    return method.startswith(OURS)


def family_means(points: List[Point]) -> List[Point]:
    """Per family, one point per (method, setting): means over the cases."""
    groups: Dict[Tuple[str, str, str], List[Point]] = {}
    for p in points:
        groups.setdefault((p.family, p.method, p.setting), []).append(p)
    out = []
    for (family, method, setting), ps in groups.items():
        def mean(values: List[Optional[float]]) -> Optional[float]:
            kept = [v for v in values if v is not None]
            return statistics.mean(kept) if kept else None

        extra = {k: statistics.mean(p.extra[k] for p in ps if k in p.extra)
                 for k in ps[0].extra}
        out.append(Point(family, f"{len(ps)} cases", method, setting,
                         statistics.mean(p.seconds_per_sample for p in ps),
                         mean([p.auc for p in ps]), mean([p.agreement for p in ps]), extra))
    return out


def targets(means: List[Point], family: str) -> List[str]:
    """The issue's two targets, checked on the family means."""
    ours = [p for p in means if p.family == family and is_ours(p.method) and p.auc is not None]
    peers = [p for p in means if p.family == family and p.method.startswith("shapiq")
             and p.auc is not None]
    if not ours or not peers:
        return []
    lines = []
    worst = None
    for s in peers:
        faster = [p.auc for p in ours if p.seconds_per_sample <= s.seconds_per_sample]
        if faster:
            gap = max(faster) - s.auc  # type: ignore[operator]
            worst = gap if worst is None else min(worst, gap)
    if worst is not None:
        lines.append(f"{family}: at equal or less time per sample, our best AUC minus "
                     f"shapiq's is >= {worst:+.3f} over every shapiq setting "
                     f"({'met' if worst >= 0 else 'MISSED'})")
    best = max(ours, key=lambda p: (p.auc, -p.seconds_per_sample))
    reach = [s for s in peers if s.auc >= best.auc - 1e-9]  # type: ignore[operator]
    if reach:
        s = min(reach, key=lambda p: p.seconds_per_sample)
        ratio = s.seconds_per_sample / best.seconds_per_sample
        lines.append(f"{family}: our best ({best.method} {best.setting}, AUC {best.auc:.3f}, "
                     f"{best.seconds_per_sample:.2e} s) is reached by {s.method} {s.setting} "
                     f"at {ratio:.0f}x the time ({'met' if ratio >= 10 else 'MISSED'} >= 10x)")
    else:
        top = max(peers, key=lambda p: p.auc)  # type: ignore[arg-type,return-value]
        lines.append(f"{family}: our best AUC {best.auc:.3f} ({best.method} {best.setting}, "
                     f"{best.seconds_per_sample:.2e} s) is not reached by shapiq at any "
                     f"budget tried (best {top.auc:.3f}, {top.method} {top.setting}, "
                     f"{top.seconds_per_sample:.2e} s): met")
    return lines


def _fmt(v: Optional[float], spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(means: List[Point]) -> None:
    print("| family | method | setting | s / sample | AUC | Spearman vs shapiq k-SII "
          "(largest budget) | top-k overlap |")
    print("|---|---|---|---|---|---|---|")
    for p in means:
        print(f"| {p.family} | {p.method} | {p.setting} | {p.seconds_per_sample:.2e} | "
              f"{_fmt(p.auc)} | {_fmt(p.agreement)} | {_fmt(p.extra.get('top_overlap'), '.2f')} |")


def plot(means: List[Point], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(p.family for p in means))
    methods = list(dict.fromkeys(p.method for p in means))
    colour = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4.2), squeeze=False)
    for ax, family in zip(axes[0], families):
        ps = [p for p in means if p.family == family]
        use_auc = any(p.auc is not None for p in ps)
        for method in dict.fromkeys(p.method for p in ps):
            line = sorted((p for p in ps if p.method == method),
                          key=lambda p: p.seconds_per_sample)
            ys = [p.auc if use_auc else p.agreement for p in line]
            ax.plot([p.seconds_per_sample for p in line], ys, "o-" if is_ours(method) else "s--",
                    color=colour[method], label=method)
        ax.set_xscale("log")
        ax.set_xlabel("wall time per explained sample (s, log scale)")
        ax.set_ylabel("pairwise interaction AUC" if use_auc else
                      "Spearman with shapiq k-SII (largest budget)")
        if use_auc:
            ax.set_ylim(min(0.5, min(y for y in (p.auc for p in ps) if y is not None)) - 0.02,
                        1.02)
        ax.set_title(family)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CONFIGS: Dict[str, Dict[str, Any]] = {
    "full": {
        "nid": list(NID_FUNCTIONS), "n_nid": 16, "n_planted": 32, "n_digits": 4,
        "ih_steps": [4, 16], "eh_refs": [8, 32], "sh_samples": [64, 256], "pe_samples": [16, 64],
        "budgets": [64, 256, 1024], "digits_budgets": [256, 1024, 4096],
        "reference_budget": REFERENCE_BUDGET,
    },
    "quick": {
        "nid": [], "n_nid": 0, "n_planted": 16, "n_digits": 2,
        "ih_steps": [8], "eh_refs": [8], "sh_samples": [64], "pe_samples": [16],
        "budgets": [64, 256], "digits_budgets": [256], "reference_budget": 2048,
    },
}


def run(cfg: Dict[str, Any]) -> List[Point]:
    points: List[Point] = []
    for case in nid_cases(cfg["nid"], cfg["n_nid"]):
        points += explain_tabular(case, cfg)
        print(f"# {case.case} done", file=sys.stderr, flush=True)
    points += explain_tabular(planted_case(cfg["n_planted"]), cfg)
    points += explain_digits(cfg["n_digits"], cfg)
    return points


def main(argv: Optional[Sequence[str]] = None) -> List[Point]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="planted MLP and 2 digits only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write every point here")
    parser.add_argument("--plot", default=None, help="figure path (full run: benchmarks/peers.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    cfg = CONFIGS["quick" if args.quick else "full"]
    start = time.perf_counter()
    points = run(cfg)
    means = family_means(points)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
          f"{'quick' if args.quick else 'full'}: {time.perf_counter() - start:.0f} s")
    print_table(means)
    for family in dict.fromkeys(p.family for p in means):
        for line in targets(means, family):
            print(line)
    plot_path = args.plot or (None if args.quick else os.path.join(HERE, "peers.png"))
    if plot_path:
        plot(means, plot_path)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"points": [asdict(p) for p in points],
                       "means": [asdict(p) for p in means]}, fh, indent=1)
    return points


if __name__ == "__main__":
    main()
