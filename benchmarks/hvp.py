"""Benchmark of the HVP engine: what does one more Hessian-vector product cost?

Prints, for a small CNN and torchvision's resnet18 at 64x64 (random weights,
cross-entropy of the predicted class, batch 4), the cost of ONE HVP when k are
computed together, divided by the cost of one batched gradient measured in the
same run, for k in {1, 4, 16} and each engine mode, plus a loop of
``torch.autograd.functional.hvp`` as the baseline. Then the time of a full
784 x 784 per-sample Hessian of an MLP against a per-feature double-backward
loop. Ratios, not absolute times, are the result: machines are noisy.

A third table (``--memory``) checks the memory budget: k HVPs per sample on a
torchvision ResNet (resnet50 at 224x224, batch 16, k=16 on CUDA; resnet18 at
64x64, batch 4 on the CPU) with the default budget and with all k vectors in one
chunk (the round-1 behaviour), against the peak of one SGD training step on the
same batch: peak extra memory, and HVPs per second.

Run: ``python benchmarks/hvp.py [--quick] [--device cuda] [--memory-only]``
"""

from __future__ import annotations

import argparse
import platform
from typing import Callable, Dict, List

import torch
from timing import median_ratio, median_time, peak_memory, timed
from torch import nn

from captum_higher_order.hessian import hessian, hvp, value_and_grad


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def models(device: str) -> Dict[str, nn.Module]:
    torch.manual_seed(0)
    out: Dict[str, nn.Module] = {"small CNN": SmallCNN()}
    try:
        import torchvision

        out["resnet18"] = torchvision.models.resnet18(weights=None)
    except Exception as err:  # pragma: no cover - torchvision optional
        print(f"(resnet18 skipped: {err})")
    return {k: v.to(device).eval() for k, v in out.items()}


def make_runner(model: nn.Module, x: torch.Tensor, target: List[int], v: torch.Tensor,
                mode: str) -> Callable[[], object]:
    """k HVPs for every sample of ``x`` with the vectors ``v`` (B, k, ...)."""
    if mode != "autograd.functional loop":
        return lambda: hvp(model, x, v, target=target, objective="cross_entropy", mode=mode)
    labels = torch.tensor(target, device=x.device)

    def loss(inp: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(model(inp), labels, reduction="sum")

    return lambda: [torch.autograd.functional.hvp(loss, x, v[:, j])[1]
                    for j in range(v.shape[1])]


def hvp_table(device: str, ks: List[int], repeats: int) -> List[str]:
    rows = ["| model | mode | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|---|" + "---|" * len(ks)]
    for name, model in models(device).items():
        x = torch.randn(4, 3, 64, 64, device=device)
        target = model(x).argmax(1).tolist()

        def grad_once(model: nn.Module = model, x: torch.Tensor = x,
                      target: List[int] = target) -> object:
            return value_and_grad(model, x, target=target, objective="cross_entropy")

        grad_cost = median_time(grad_once, repeats, device)
        for mode in ["fwd_rev", "rev_rev", "ggn", "autograd.functional loop"]:
            cells = []
            for k in ks:
                v = torch.randn(4, k, 3, 64, 64, device=device)
                run = make_runner(model, x, target, v, mode)
                cells.append(f"{median_ratio(run, grad_once, repeats, device) / k:.2f}")
            rows.append(f"| {name} | {mode} | " + " | ".join(cells) + " |")
        print(f"{name}: one batched gradient = {grad_cost * 1e3:.1f} ms")
    return rows


def full_hessian_table(device: str, repeats: int, batches: List[int]) -> List[str]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
                          nn.Linear(256, 10)).to(device).eval()
    rows = [
        "| full 784x784 Hessian | per-feature double-backward loop | "
        "captum_higher_order.hessian | speed-up | rel. difference |",
        "|---|---|---|---|---|",
    ]
    for batch in batches:
        x = torch.randn(batch, 784, device=device)
        target = model(x).argmax(1)

        def ours(x: torch.Tensor = x, target: torch.Tensor = target) -> torch.Tensor:
            return hessian(model, x, target=target, objective="cross_entropy")

        def loop(x: torch.Tensor = x, target: torch.Tensor = target) -> torch.Tensor:
            xr = x.clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xr), target, reduction="sum")
            (g,) = torch.autograd.grad(loss, xr, create_graph=True)
            per_feature = [torch.autograd.grad(g[:, i].sum(), xr, retain_graph=True)[0]
                           for i in range(784)]
            return torch.stack(per_feature, dim=1)

        reference = loop()
        err = float((ours() - reference).norm() / reference.norm())
        t_ours = median_time(ours, repeats, device)
        t_loop = median_time(loop, max(1, repeats // 2), device)
        rows.append(f"| batch {batch} | {t_loop * 1e3:.0f} ms | {t_ours * 1e3:.0f} ms | "
                    f"{t_loop / t_ours:.1f}x | {err:.1e} |")
    return rows


def training_step_peak(model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                       device: str) -> float:
    """Peak extra MiB of one SGD step (train mode, gradients allocated fresh)."""
    import copy

    net = copy.deepcopy(model).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), labels).backward()
        opt.step()

    step()  # momentum buffers exist from here on, as in a running training loop
    return peak_memory(step, device)[1]


def memory_table(device: str, repeats: int) -> List[str]:
    import torchvision

    on_cuda = device.startswith("cuda")
    name, size, batch, k = ("resnet50", 224, 16, 16) if on_cuda else ("resnet18", 64, 4, 16)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    labels = model(x).argmax(1)
    v = torch.randn(batch, k, 3, size, size, device=device)
    train_peak = training_step_peak(model, x, labels, device)
    rows = [f"{name} {size}x{size}, batch {batch}, k={k}: one SGD training step peaks at "
            f"{train_peak:.0f} MiB extra",
            "| mode | chunks | peak extra MiB | / training step | HVPs/s |",
            "|---|---|---|---|---|"]
    for mode in ("fwd_rev", "rev_rev", "ggn"):
        budget = int(2 * train_peak * 2**20)
        for label, chunk, mib in (("all k at once (round 1)", k, None),
                                  ("default budget", None, None),
                                  ("budget = 2 x training step", None, budget)):
            def run(mode: str = mode, chunk=chunk, mib=mib) -> object:
                return hvp(model, x, v, target=labels, objective="cross_entropy", mode=mode,
                           chunk_size=chunk, memory_budget=mib)

            try:
                _, peak = peak_memory(run, device)
                seconds = min(timed(run, device) for _ in range(repeats))
            except (RuntimeError, MemoryError) as err:  # OOM of the unbounded run
                rows.append(f"| {mode} | {label} | failed: {str(err).splitlines()[0][:60]} "
                            "| | |")
                continue
            rows.append(f"| {mode} | {label} | {peak:.0f} | {peak / train_peak:.2f} | "
                        f"{batch * k / seconds:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--memory-only", action="store_true", help="only the budget table")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    if args.device == "cuda":
        print(torch.cuda.get_device_name())
    if not args.memory_only:
        print("\nPer-HVP cost of k batched HVPs / one batched gradient (lower is better)")
        print("\n".join(hvp_table(args.device, [1, 4, 16], repeats)))
        print()
        print("\n".join(full_hessian_table(args.device, repeats, [1, 4])))
    print("\nMemory budget: k HVPs per sample; one chunk, the default budget, and a budget of "
          "twice a training step")
    print("\n".join(memory_table(args.device, 2 if args.quick else 3)))


if __name__ == "__main__":
    main()
