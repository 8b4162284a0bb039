"""Benchmark of DTDRootCheck: what do the relevance map and the root report cost?

For a small ReLU CNN on 1x8x8 and 1x16x16 inputs (random weights, float32,
batch 8), prints the time of ``DTDRootCheck.attribute`` (z+) and of
``DTDRootCheck.check`` (z+, 16 segment points, 2 directions) divided by the
time of Captum's ``LRP`` with ``Alpha1_Beta0_Rule(set_bias_to_zero=True)``,
the baseline, measured back to back in the same run, plus the number of roots
checked per second. Ratios, not absolute times, are the result.

``--resnet`` adds torchvision resnet18 and vgg11_bn (random weights) at
3x64x64, batch 1, float32: ``check`` with ``max_roots=8``,
``n_segment_points=4``, ``n_directions=1`` (sampled roots), its time over one
``attribute`` call (Captum's LRP has no rule for residual additions, so it
cannot be the baseline there) and the peak extra memory of ``check``
(``timing.peak_memory``).

Run: ``python benchmarks/dtd_root_check.py [--quick] [--resnet]``
"""

from __future__ import annotations

import argparse
import platform

import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule
from timing import median_ratio, peak_memory, timed
from torch import nn

from captum_higher_order.attr.dtd_root_check import DTDRootCheck


class Net(nn.Module):
    def __init__(self, side: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * (side // 4) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.fc(x.flatten(1))


def captum_lrp(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.rule = Alpha1_Beta0_Rule(set_bias_to_zero=True)
    return LRP(model).attribute(x.clone(), target=target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--resnet", action="store_true",
                        help="also torchvision resnet18 and vgg11_bn at 3x64x64")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, float32, batch 8, repeats {repeats}")
    print(f"{'input':>8} {'attribute / LRP':>16} {'check / LRP':>12} {'roots':>7} "
          f"{'roots/s':>8}")
    for side in (8, 16):
        run_one(side, repeats)
    if args.resnet:
        print(f"{'model':>10} {'check s':>8} {'check / attribute':>18} {'peak MiB':>9} "
              f"{'roots':>6}")
        for name in ("resnet18", "vgg11_bn"):
            run_torchvision(name)


def run_torchvision(name: str) -> None:
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    dtd = DTDRootCheck(model, rule="z+")

    def check() -> object:
        return dtd.check(x, target=0, max_roots=8, n_segment_points=4, n_directions=1)

    t_attr = timed(lambda: dtd.attribute(x, target=0))
    start = timed(lambda: None)
    report, mib = peak_memory(check)
    seconds = timed(check) + start
    n_roots = int(report.n_roots.sum())  # type: ignore[attr-defined]
    print(f"{name:>10} {seconds:>8.1f} {seconds / t_attr:>18.1f} {mib:>9.0f} {n_roots:>6d}")


def run_one(side: int, repeats: int) -> None:
    model = Net(side).eval()
    x = torch.rand(8, 1, side, side)
    target = torch.arange(8) % 10
    dtd = DTDRootCheck(model, rule="z+")
    ours = dtd.attribute(x, target=target)
    ref = captum_lrp(model, x, target)
    assert torch.allclose(ours, ref, atol=1e-5), "z+ differs from Captum's LRP"

    def lrp() -> object:
        return captum_lrp(model, x, target)

    def attribute() -> object:
        return dtd.attribute(x, target=target)

    def check() -> object:
        return dtd.check(x, target=target)

    r_attr = median_ratio(attribute, lrp, repeats)
    r_check = median_ratio(check, lrp, max(1, repeats // 2))
    n_roots = int(dtd.check(x, target=target).n_roots.sum())
    seconds = timed(check)
    print(f"{side:>4}x{side:<3} {r_attr:>16.2f} {r_check:>12.1f} {n_roots:>7d} "
          f"{n_roots / seconds:>8.0f}")

if __name__ == "__main__":
    main()
