"""Benchmark of TaylorCAM: how much does the second-order map cost over Grad-CAM?

TaylorCAM needs one Hessian-vector product per cell of the layer grid (49 for
resnet18 ``layer4`` at 224x224, 196 for ``layer3``). Issue 20 targets: TaylorCAM
(with ``return_first_order=True``) at most 2 LayerGradCams at ``layer4`` and 6 at
``layer3``. Each round times TaylorCAM's default path, the whole-network
forward-over-reverse path (``mode="fwd_rev"``: the layers before ``layer`` run
again, as every product did before the recorded tail) and Captum
``LayerGradCam`` back to back, so load from other processes hits them alike;
the median ratios are reported, with the peak extra memory of each call
(benchmarks/timing.py). Model: torchvision resnet18 (random weights, eval),
log-softmax objective.

Run: ``python benchmarks/taylor_cam.py [--quick | --full] [--size S] [--device cuda]
[--repeats N]`` (default: layer4 at batch 1 and 2; ``--quick`` layer4 batch 1;
``--full`` adds layer3, about 5 CPU-minutes more at 224x224).
"""

from __future__ import annotations

import argparse
import platform

import torch
from captum.attr import LayerGradCam
from timing import paired, peak_memory

from captum_higher_order.attr.taylor_cam import TaylorCAM

TARGETS = {"layer4": 2.0, "layer3": 6.0}


def path_taken(model, layer, x, target):
    """Which path the products took: "tail" when the stem ran once."""
    calls = {"n": 0}
    handle = model.conv1.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    try:
        TaylorCAM(model, layer).attribute(x, target=target)
    finally:
        handle.remove()
    return "tail" if calls["n"] == 1 else "whole"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--quick", action="store_true", help="layer4, batch 1 only")
    parser.add_argument("--full", action="store_true",
                        help="also layer3 (196 cells at 224x224; ~5 CPU-minutes more)")
    args = parser.parse_args()
    device = args.device

    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).to(device).eval()
    print(f"# TaylorCAM vs LayerGradCam, resnet18 (random weights) {args.size}x{args.size}, "
          f"{device}")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} paired rounds")
    configs = [("layer4", 1)] if args.quick else [("layer4", 1), ("layer4", 2)]
    if args.full:
        configs.append(("layer3", 1))
    print("| layer | batch | cells R | path | LayerGradCam s | TaylorCAM s | ratio | target | "
          "whole-network fwd_rev / LayerGradCam | peak MiB: LayerGradCam / TaylorCAM / "
          "whole-network |")
    print("|" + "---|" * 10)
    for name, batch in configs:
        row(model, name, batch, args, device)


def row(model, name, batch, args, device) -> None:
    layer = getattr(model, name)
    x = torch.randn(batch, 3, args.size, args.size, device=device)
    target = list(range(batch))
    gc = LayerGradCam(model, layer)
    tc = TaylorCAM(model, layer)
    cells = int(torch.tensor(gc.attribute(x, target=target).shape[2:]).prod())

    def taylor():
        return tc.attribute(x, target=target, return_first_order=True)

    def whole():
        return tc.attribute(x, target=target, return_first_order=True, mode="fwd_rev")

    def gradcam():
        return gc.attribute(x, target=target)

    _, mem_gc = peak_memory(gradcam, device)
    _, mem_tc = peak_memory(taylor, device)
    _, mem_whole = peak_memory(whole, device)
    t_tc, t_gc, ratio = paired(taylor, gradcam, args.repeats, device)
    _, _, whole_ratio = paired(whole, gradcam, args.repeats, device)
    target_ratio = TARGETS.get(name, float("nan"))
    verdict = "ok" if ratio <= target_ratio else "MISSED"
    print(f"| {name} | {batch} | {cells} | {path_taken(model, layer, x, target)} | "
          f"{t_gc:.3f} | {t_tc:.3f} | {ratio:.2f} | {target_ratio:g} ({verdict}) | "
          f"{whole_ratio:.2f} | {mem_gc:.0f} / {mem_tc:.0f} / {mem_whole:.0f} |", flush=True)


if __name__ == "__main__":
    main()
