"""Benchmark of TaylorCAM: how much does the second-order map cost over Grad-CAM?

TaylorCAM needs one Hessian-vector product per cell of the layer grid (49 for
resnet18 ``layer4`` at 224x224). The target from the issue: TaylorCAM time
divided by Captum ``LayerGradCam`` time at most 1.5 x (number of cells), i.e.
no worse than 1.5 gradient passes per cell. Both are timed back to back in
each round (so load from other processes hits both alike) and the median ratio
is reported, for torchvision's resnet18 (random weights, eval mode, log-softmax
objective) at 224x224. As a reference, the same cross terms from a loop of
``R`` reverse-over-reverse HVPs (double backward, graph built once) are timed
against the same LayerGradCam.

Run: ``python benchmarks/taylor_cam.py [--quick | --full] [--device cuda] [--repeats N]``
(default: layer4 at batch 1 and 2, about a minute of CPU time; ``--full`` adds
layer3, 14x14 = 196 cells).
"""

from __future__ import annotations

import argparse
import platform

import torch
from captum.attr import LayerGradCam
from timing import paired

from captum_higher_order.attr.taylor_cam import TaylorCAM


def double_backward_loop(model, layer, x, target):
    """Reference: the same M from R separate double-backward HVPs."""
    store = {}

    def keep(module, inp, out):
        store["a"] = out
        return out

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            out = model(x)
            a = store["a"]
            score = torch.log_softmax(out, 1)[torch.arange(x.shape[0]), target].sum()
            (grad,) = torch.autograd.grad(score, a, create_graph=True)
            cells = a[0, 0].numel()
            cols = []
            for s in range(cells):
                ind = torch.zeros_like(a).flatten(2)
                ind[:, :, s] = 1.0
                (hv,) = torch.autograd.grad(grad, a, ind.view_as(a), retain_graph=True)
                cols.append((a.detach() * hv).flatten(2).sum(1))
    finally:
        handle.remove()
    return torch.stack(cols, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="layer4, batch 1 only")
    parser.add_argument("--full", action="store_true",
                        help="also layer3 (196 cells; ~5 CPU-minutes more)")
    args = parser.parse_args()
    device = args.device

    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).to(device).eval()
    print(f"# TaylorCAM vs LayerGradCam, resnet18 (random weights) 224x224, {device}")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} paired rounds")
    configs = [("layer4", 1)] if args.quick else [("layer4", 1), ("layer4", 2)]
    if args.full:
        configs.append(("layer3", 1))
    header = ("| layer | batch | cells R | LayerGradCam s | TaylorCAM s | ratio | "
              "ratio / R | target 1.5 R | double-backward loop / LayerGradCam |")
    print(header)
    print("|" + "---|" * 9)
    for name, batch in configs:
        layer = getattr(model, name)
        x = torch.randn(batch, 3, 224, 224, device=device)
        target = list(range(batch))
        gc = LayerGradCam(model, layer)
        tc = TaylorCAM(model, layer)
        cells = int(torch.tensor(gc.attribute(x, target=target).shape[2:]).prod())

        def taylor(tc=tc, x=x, target=target):
            return tc.attribute(x, target=target, return_first_order=True)

        def gradcam(gc=gc, x=x, target=target):
            return gc.attribute(x, target=target)

        def loop(layer=layer, x=x, target=target):
            return double_backward_loop(model, layer, x, target)

        t_tc, t_gc, ratio = paired(taylor, gradcam, args.repeats, device)
        loop_reps = 1 if name == "layer3" else args.repeats
        _, _, loop_ratio = paired(loop, gradcam, loop_reps, device)
        verdict = "ok" if ratio <= 1.5 * cells else "MISSED"
        print(f"| {name} | {batch} | {cells} | {t_gc:.3f} | {t_tc:.3f} | {ratio:.2f} | "
              f"{ratio / cells:.3f} | {1.5 * cells:.1f} ({verdict}) | {loop_ratio:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
