"""Token-pair interactions on the zoo's tiny text model (planted pairs) and the
cost of a 128-token input.

``python benchmarks/token_interactions.py [--quick] [--device cpu|cuda]``

1. **Planted-pair AUC.** :mod:`captum_higher_order.zoo.text_toy` is a small
   transformer fitted to ``y0 = 2 s (1 - 2 [not]) + [loved] - [hated]`` and
   ``y1 = 2 [sun and beach] + [hot]``: in output 0 only ``not`` x the
   sentiment word interact, in output 1 only ``sun`` x ``beach``;
   ``loved``/``hated``/``hot`` have main effects and no interaction. For every
   held-out sentence and output with a planted pair, the pairs ``i < j`` of
   real tokens are ranked by ``|M_ij|`` and scored by ROC-AUC (mean over
   sentence-output cases). Methods: ``LayerIntegratedHessians`` (32 path
   points), ``LayerCrossDerivatives`` (``Delta^T H Delta``),
   ``LayerSmoothHess`` (relative sigma 0.5, 256 gradient calls), and the
   first-order baseline ``|a_i a_j|`` of Captum's ``LayerIntegratedGradients``
   (50 steps). Baselines: ``[PAD]`` tokens at the real positions.
2. **Time per sample at 128 tokens** on a randomly initialised model of the
   same architecture (the trained one has 10 positions), against
   ``LayerIntegratedGradients`` timed in the same run, with peak extra memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from typing import Callable, Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from captum.attr import LayerIntegratedGradients  # noqa: E402
from timing import median_time, peak_memory  # noqa: E402

from captum_higher_order import (  # noqa: E402
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
)
from captum_higher_order.metrics import roc_auc  # noqa: E402
from captum_higher_order.zoo import text_toy  # noqa: E402

Method = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


def lih(model, ids, mask, target, n_steps=32):
    return LayerIntegratedHessians(model, model.embedding).attribute(
        ids, baselines=text_toy.PAD_ID, target=target, additional_forward_args=(mask,),
        n_steps=n_steps)


def lcd(model, ids, mask, target):
    return LayerCrossDerivatives(model, model.embedding).attribute(
        ids, target=target, additional_forward_args=(mask,), baselines=text_toy.PAD_ID)


def lsh(model, ids, mask, target, n_samples=256):
    return LayerSmoothHess(model, model.embedding).attribute(
        ids, target=target, additional_forward_args=(mask,), baselines=text_toy.PAD_ID,
        sigma=0.5, n_samples=n_samples, generator=0)


def lig_products(model, ids, mask, target, n_steps=50):
    a = LayerIntegratedGradients(model, model.embedding).attribute(
        ids, baselines=text_toy.PAD_ID, target=target, additional_forward_args=(mask,),
        n_steps=n_steps).sum(-1)
    return a.unsqueeze(2) * a.unsqueeze(1)


METHODS: Dict[str, Method] = {
    "LayerIntegratedHessians": lih,
    "LayerCrossDerivatives": lcd,
    "LayerSmoothHess": lsh,
    "LayerIntegratedGradients |a_i a_j| (first order)": lig_products,
}


def pair_aucs(n: int, device: str) -> Dict[str, float]:
    model = text_toy.load_text_toy(device=device)
    sentences = text_toy.sample_sentences(n, seed=12345)
    ids, mask = (t.to(device) for t in text_toy.encode(sentences))
    aucs: Dict[str, List[float]] = {name: [] for name in METHODS}
    for output in (0, 1):
        rows = [r for r, s in enumerate(sentences) if text_toy.planted_token_pairs(s, output)]
        for name, method in METHODS.items():
            m = method(model, ids[rows], mask[rows], output).detach().abs().cpu()
            for k, r in enumerate(rows):
                length = len(sentences[r])
                iu = torch.triu_indices(length, length, 1)
                truth = torch.zeros(length, length, dtype=torch.bool)
                for i, j in text_toy.planted_token_pairs(sentences[r], output):
                    truth[i, j] = True
                aucs[name].append(roc_auc(m[k][iu[0], iu[1]], truth[iu[0], iu[1]]))
    return {name: statistics.mean(v) for name, v in aucs.items()}


def timing_128(device: str, quick: bool) -> None:
    torch.manual_seed(0)
    model = text_toy.TextToy(max_len=128).to(device).eval()
    ids = torch.randint(2, len(text_toy.VOCAB), (1, 128), device=device)
    mask = torch.ones_like(ids)
    steps = 4 if quick else 16
    runs = {
        "LayerIntegratedGradients (50 steps)": lambda: lig_products(model, ids, mask, 0),
        f"LayerIntegratedHessians ({steps} steps)":
            lambda: lih(model, ids, mask, 0, n_steps=steps),
        "LayerCrossDerivatives": lambda: lcd(model, ids, mask, 0),
        "LayerSmoothHess (256 grads)": lambda: lsh(model, ids, mask, 0),
    }
    base = None
    print(f"\n128 tokens, batch 1, {device}: seconds per sample (median), ratio to LIG, "
          "peak extra MiB")
    print("| method | s/sample | x LIG | peak MiB |\n|---|---|---|---|")
    for name, fn in runs.items():
        seconds = median_time(fn, 1 if quick else 3, device)
        _, peak = peak_memory(fn, device)
        base = base or seconds
        print(f"| {name} | {seconds:.2f} | {seconds / base:.1f} | {peak:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 sentences, short timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=None, help="held-out sentences")
    parser.add_argument("--skip-timing", action="store_true", help="AUC table only")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    n = args.n or (20 if args.quick else 200)
    aucs = pair_aucs(n, args.device)
    print(f"Planted token-pair ROC-AUC, {n} held-out sentences, {args.device}")
    print("| method | AUC |\n|---|---|")
    for name, value in aucs.items():
        print(f"| {name} | {value:.3f} |")
    if not args.skip_timing:
        timing_128(args.device, args.quick)


if __name__ == "__main__":
    main()
