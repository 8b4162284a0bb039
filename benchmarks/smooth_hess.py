"""Benchmark: SmoothHess against Captum's SmoothGrad at the same gradient calls.

SmoothHess needs nothing but gradients at noisy points, exactly the work that
Captum's ``NoiseTunnel(Saliency(model), nt_type="smoothgrad")`` does. The
number that matters is therefore the ratio

    time(SmoothHess.attribute) / time(NoiseTunnel(Saliency).attribute)

with the same inputs, the same number of gradient calls per input and all
noisy points in one forward/backward pass for both (Captum's default
``nt_samples_batch_size=None``). What SmoothHess adds is the accumulation of
the rank-one Stein terms (``F x F`` per input, or ``G x G`` after projecting
on a ``feature_mask``). Target: ratio <= 1.2.

Cases:

* a ReLU MLP 784-256-256-10 on MNIST-sized inputs, dense ``784 x 784``
  interactions per input;
* torchvision's resnet18 (``weights=None``: random weights, no download) at
  3x64x64 with a 64-group feature mask (8x8 superpixels).

Each ratio is the median over rounds of the two timings taken back to back, so
that load from other processes hits both alike.

Peak memory (``timing.peak_memory``: CUDA allocator peak, or the CPU
resident high-water mark) of one call of each is printed beside the ratios.
``--before FILE`` also times an older ``smooth_hess.py`` (e.g. ``git show
main:captum_higher_order/attr/smooth_hess.py > /tmp/old.py``) in the same
rounds, so before/after share the machine's load.

Run: ``python benchmarks/smooth_hess.py [--quick] [--device cuda] [--before FILE]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
from captum.attr import NoiseTunnel, Saliency
from timing import peak_memory
from torch import nn

from captum_higher_order.attr.smooth_hess import SmoothHess

#: An older SmoothHess class to time beside the current one (``--before``).
BEFORE: List[type] = []
#: Rounds per case when ``--repeats`` is given (0: the defaults).
REPEATS: List[int] = [0]


def load_before(path: str) -> type:
    import importlib.util

    spec = importlib.util.spec_from_file_location("smooth_hess_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SmoothHess


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> Tuple[float, float]:
    """Wall-clock and process CPU seconds of one call. On a shared CPU the CPU
    time is the steadier measure of work; on CUDA only wall time means much."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(
    fns: Dict[str, Callable[[], object]], base: Callable[[], object], repeats: int, device: str
) -> Dict[str, float]:
    """Median base time, and per fn the median ratios time(fn) / time(base),
    wall and CPU, each pair timed back to back."""
    base()
    for fn in fns.values():
        fn()  # warm-up
    base_times: List[float] = []
    wall: Dict[str, List[float]] = {name: [] for name in fns}
    cpu: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            b_wall, b_cpu = timed(base, device)
            f_wall, f_cpu = timed(fn, device)
            base_times.append(b_wall)
            wall[name].append(f_wall / b_wall)
            cpu[name].append(f_cpu / max(b_cpu, 1e-9))
    out = {"base_s": statistics.median(base_times)}
    for name in fns:
        out[name] = statistics.median(wall[name])
        out[name + " cpu"] = statistics.median(cpu[name])
    return out


def variants(sh: SmoothHess, x: torch.Tensor, **kwargs: object) -> Dict[str, Callable[[], object]]:
    """The three timed calls: interactions only, + SmoothGrad, + standard errors
    (and the first two of an older implementation with ``--before``)."""
    out = {
        "SmoothHess": lambda: sh.attribute(x, generator=0, **kwargs),
        "+gradient": lambda: sh.attribute(x, generator=0, return_gradient=True, **kwargs),
        "+gradient+stderr": lambda: sh.attribute(x, generator=0, return_gradient=True,
                                                 return_stderr=True, **kwargs),
    }
    if BEFORE:
        old = BEFORE[0](sh.forward_func)
        out["before"] = lambda: old.attribute(x, generator=0, **kwargs)
        out["before+gradient"] = lambda: old.attribute(x, generator=0, return_gradient=True,
                                                       **kwargs)
    return out


def peaks(fns: Dict[str, Callable[[], object]], base: Callable[[], object],
          device: str) -> Dict[str, float]:
    """Peak extra MiB of one call of the base and of each variant."""
    out = {"base_mib": peak_memory(base, device)[1]}
    for name, fn in fns.items():
        out[name + " mib"] = peak_memory(fn, device)[1]
    return out


def mlp_case(device: str, quick: bool) -> Dict[str, object]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(device).eval()
    batch, n = (4, 128) if quick else (8, 256)
    x = torch.rand(batch, 784, device=device)
    target = model(x).argmax(1).tolist()
    sigma = 0.1
    rows = batch * n
    sh = SmoothHess(model)
    nt = NoiseTunnel(Saliency(model))

    def base() -> object:
        return nt.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma,
                            target=target, abs=False)

    fns = variants(sh, x, target=target, sigma=sigma, n_samples=n, batch_size=rows)
    res = interleaved(fns, base, REPEATS[0] or (3 if quick else 9), device)
    res.update(peaks(fns, base, device))
    return {"case": f"ReLU MLP 784-256-256-10, dense 784x784, B={batch}, n={n}", **res}


def resnet_case(device: str, quick: bool) -> Dict[str, object]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None).to(device).eval()
    batch, n = (1, 16) if quick else (2, 16)
    if device == "cuda":
        batch, n = 8, 128
    x = torch.rand(batch, 3, 64, 64, device=device)
    target = model(x).argmax(1).tolist()
    cells = torch.arange(64, device=device) // 8  # 8x8 grid of 8x8 superpixels
    mask = (cells.view(64, 1) * 8 + cells.view(1, 64)).view(1, 1, 64, 64)
    sigma = 0.1
    rows = batch * n
    sh = SmoothHess(model)
    nt = NoiseTunnel(Saliency(model))

    def base() -> object:
        return nt.attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma,
                            target=target, abs=False)

    fns = variants(sh, x, target=target, sigma=sigma, n_samples=n, feature_mask=mask,
                   batch_size=rows)
    res = interleaved(fns, base, REPEATS[0] or (3 if quick else 5), device)
    res.update(peaks(fns, base, device))
    return {"case": f"resnet18 3x64x64, 64 groups, B={batch}, n={n}", **res}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--before", default=None,
                        help="an older smooth_hess.py to time in the same rounds")
    parser.add_argument("--repeats", type=int, default=0,
                        help="rounds per case (default 3 with --quick, else 9 / 5)")
    args = parser.parse_args()
    REPEATS[0] = args.repeats
    if args.before:
        BEFORE.append(load_before(args.before))
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    print(f"torch {torch.__version__}, device {device} ({name}), "
          f"threads {torch.get_num_threads()}")
    print("ratio = time(SmoothHess) / time(NoiseTunnel(Saliency), smoothgrad), same "
          "gradient calls, one pass each; wall (cpu = process CPU time); target <= 1.2\n")
    names = ["SmoothHess", "+gradient", "+gradient+stderr"]
    if BEFORE:
        names += ["before", "before+gradient"]
    print("cells: time ratio (cpu ratio) [peak MiB; NoiseTunnel's in its own column]")
    print("| case | NoiseTunnel wall s [MiB] | " + " | ".join(names) + " |")
    print("|" + "---|" * (2 + len(names)))
    for case in (mlp_case, resnet_case):
        r = case(device, args.quick)
        cells = [f"{r[n]:.2f} (cpu {r[n + ' cpu']:.2f}) [{r[n + ' mib']:.0f}]" for n in names]
        print(f"| {r['case']} | {r['base_s']:.3f} [{r['base_mib']:.0f}] | " + " | ".join(cells)
              + " |", flush=True)


if __name__ == "__main__":
    main()
