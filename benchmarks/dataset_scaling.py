"""Samples per second of explain_dataset: 1 and 2 gloo processes on the CPU, the
cost of checkpointing, and on a GPU one process with and without an NCCL group.

Workloads (both from the embedded zoo, float32):

* ``tabular``: CrossDerivatives (order 2, objective "output") on the planted
  8-feature GELU MLP;
* ``cnn``: SmoothHess with a 2x2-block feature mask (16 groups) on the digits
  CNN, ``objective="log_softmax"``, ``n_samples`` noise draws per sample.

Each run is a process started by this script (``--worker``) that pins one
intra-op thread, joins a process group when its mode asks for one (``gloo``: two
processes on a free localhost port; ``nccl``: one process on the GPU, so the
statistics are reduced by NCCL as under torchrun), runs one warm-up batch, waits
at a barrier, and times ``explain_dataset`` over the same data (batches split
round-robin between ranks). Samples/second counts the whole dataset over the
slowest rank's wall time. Scaling efficiency = (2-process rate) / (2 x 1-process
rate). The CPU seconds per 1000 samples (summed over ranks) show the work the
sharding adds, independent of how busy the machine's cores are. ``checkpoint``
runs one process with ``checkpoint=`` (every 50 batches): its ratio to the plain
run is the cost of recording every batch's digest and writing the files. If
CrossDerivatives or SmoothHess is not installed, the engine's exact
``hessian()`` is used instead and the table says so.

Run: ``python benchmarks/dataset_scaling.py [--samples N] [--repeats R]``;
``--device cuda`` times one process on a GPU: plain, in a one-process NCCL
group, and with a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workload(name: str, samples: int, device: str):
    """(method, data, attribute kwargs, target, label) for a workload."""
    import torch

    from captum_higher_order import zoo

    if name == "tabular":
        model = zoo.load_planted_mlp(device=device)
        x = zoo.sample_inputs(samples, seed=1).to(device)
        kwargs = {}
        try:
            from captum_higher_order.attr.cross_derivatives import CrossDerivatives

            method, label = CrossDerivatives(model), "CrossDerivatives"
        except ImportError:
            method, label = _Hessian(model), "hessian() (CrossDerivatives not installed)"
        return method, list(x.split(32)), kwargs, None, label
    model = zoo.load_digits_cnn(device=device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 1, 8, 8, generator=gen).to(device)
    blocks = torch.arange(8) // 2
    mask = (blocks.view(-1, 1) * 4 + blocks.view(1, -1)).view(1, 1, 8, 8).to(device)
    kwargs = {"feature_mask": mask, "objective": "log_softmax"}
    try:
        from captum_higher_order.attr.smooth_hess import SmoothHess

        method, label = SmoothHess(model), "SmoothHess (16 groups, 64 draws)"
        kwargs.update(n_samples=64, sigma=0.25, generator=0)
    except ImportError:
        method, label = _Hessian(model), "hessian() (SmoothHess not installed)"
    return method, list(x.split(16)), kwargs, "predicted", label


class _Hessian:
    def __init__(self, model):
        self.forward_func = model

    def attribute(self, inputs, target=None, **kwargs):
        from captum_higher_order.hessian import hessian

        return hessian(self.forward_func, inputs, target=target, **kwargs)


#: Modes of one timed run: (label, processes, process-group backend, checkpoint).
CPU_MODES = [("1 proc", 1, None, False), ("2 procs (gloo)", 2, "gloo", False),
             ("1 proc + checkpoint", 1, None, True)]
CUDA_MODES = [("1 proc", 1, None, False), ("1 proc in an nccl group", 1, "nccl", False),
              ("1 proc + checkpoint", 1, None, True)]


def worker(rank: int, world: int, port: int, name: str, samples: int, device: str,
           out: str, backend: str, checkpoint: bool) -> None:
    import datetime

    import torch
    import torch.distributed as dist

    from captum_higher_order.dataset import explain_dataset

    torch.set_num_threads(1)
    if backend != "none":
        if backend == "nccl":
            torch.cuda.set_device(0)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=300))
    method, batches, kwargs, target, label = _workload(name, samples, device)
    explain_dataset(method, batches[:1], target=target, attribute_kwargs=kwargs,
                    progress=False, shard="none")  # warm-up
    if backend != "none":
        dist.barrier()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.ckpt") if checkpoint else None
        start, cpu_start = time.perf_counter(), time.process_time()
        result = explain_dataset(method, batches, target=target, attribute_kwargs=kwargs,
                                 progress=False, checkpoint=path)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    if backend != "none":
        times = [None] * world
        dist.all_gather_object(times, (elapsed, cpu))
        elapsed = max(t[0] for t in times)
        cpu = sum(t[1] for t in times)
        dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"elapsed": elapsed, "cpu": cpu, "count": result.count, "label": label},
                      f)


def run(name: str, world: int, samples: int, device: str, backend: Optional[str],
        checkpoint: bool) -> dict:
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(r), str(world),
                                   str(port), name, str(samples), device, out,
                                   backend or "none", str(int(checkpoint))], env=env)
                 for r in range(world)]
        codes = [p.wait(timeout=900) for p in procs]
        if any(codes):
            raise RuntimeError(f"{name} with {world} processes failed: {codes}")
        with open(out) as f:
            return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16384, help="tabular samples [16384]")
    parser.add_argument("--cnn-samples", type=int, default=1024, help="CNN samples [1024]")
    parser.add_argument("--repeats", type=int, default=3, help="best of R runs [3]")
    parser.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}, device: {args.device}")
    modes = CUDA_MODES if args.device.startswith("cuda") else CPU_MODES
    rows = []
    for name, samples in (("tabular", args.samples), ("cnn", args.cnn_samples)):
        rates, cpu = [], []
        for _, world, backend, checkpoint in modes:
            best = min((run(name, world, samples, args.device, backend, checkpoint)
                        for _ in range(args.repeats)), key=lambda r: r["elapsed"])
            rates.append(best["count"] / best["elapsed"])
            cpu.append(1000 * best["cpu"] / best["count"])
            label = best["label"]
        rows.append((name, label, samples, rates, cpu))
    print()
    labels = [m[0] for m in modes]
    print(f"| workload | method | samples | {labels[0]} (samples/s) | {labels[1]} (samples/s) "
          f"| ratio | {labels[2]} (samples/s) | ratio "
          f"| CPU s / 1k samples: {' / '.join(labels)} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, label, samples, rates, cpu in rows:
        print(f"| {name} | {label} | {samples} | {rates[0]:.1f} | {rates[1]:.1f} "
              f"| {rates[1] / rates[0]:.2f}x | {rates[2]:.1f} | {rates[2] / rates[0]:.2f}x "
              f"| {' / '.join(f'{c:.3f}' for c in cpu)} |")
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    if len(sys.argv) == 11 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
               int(sys.argv[6]), sys.argv[7], sys.argv[8], sys.argv[9], sys.argv[10] == "1")
    else:
        main()
