"""Cost of the output check (docs/design.md, "Dtype policy"): the one no-grad
forward pass (plus the one-sample probe when shapes are ambiguous) that every
method runs to check the model's output against the inputs, as a ratio to the
method's whole ``attribute`` call, timed back to back in every round.

Run: ``python benchmarks/output_check.py [--quick] [--repeats N]``
"""

from __future__ import annotations

import argparse
import platform
import warnings

import torch
from timing import paired
from torch import nn

import captum_higher_order as cho
from captum_higher_order._inputs import check_forward, format_inputs


def _mlp(d_in: int, d_out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d_in, 64), nn.Softplus(), nn.Linear(64, 64), nn.Softplus(),
                         nn.Linear(64, d_out)).eval()


def _cnn(classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(),
                         nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.GELU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, classes)).eval()


def settings(quick: bool):
    mlp, x = _mlp(16, 10), torch.randn(32, 16)
    cnn, xc = _cnn(10), torch.randn(8, 3, 16, 16)
    square, xs = _cnn(8), torch.randn(8, 3, 16, 16)  # B == C: the probe runs too
    rows = [
        ("CrossDerivatives, MLP 16 features, B=32", mlp, x,
         lambda: cho.CrossDerivatives(mlp).attribute(x, target=0)),
        ("SecondOrderSaliency, CNN 3x16x16, B=8", cnn, xc,
         lambda: cho.SecondOrderSaliency(cnn).attribute(xc, target=0)),
        ("TaylorCAM, CNN 3x16x16, B=8 == C (probe)", square, xs,
         lambda: cho.TaylorCAM(square, square[2]).attribute(xs, target=0)),
    ]
    return rows[:2] if quick else rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first two settings")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| setting | check (ms) | attribute (ms) | check / attribute |")
    print("|---|---|---|---|")
    for name, model, x, call in settings(args.quick):
        check = lambda m=model, x=x: check_forward(m, format_inputs(x))  # noqa: E731
        t_check, t_call, ratio = paired(check, call, args.repeats)
        print(f"| {name} | {1e3 * t_check:.2f} | {1e3 * t_call:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
