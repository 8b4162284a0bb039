"""Distributed runs: two gloo processes (spawned by the test) give the
single-process result; a one-process group takes the same collective path; the
reduction device follows the backend (NCCL: the rank's GPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import NamedTuple

import pytest
import torch

from captum_higher_order.dataset import (
    Batch,
    explain_dataset,
)
from captum_higher_order.dataset.distributed import reduction_device
from tests.dataset.helpers import (
    SIZES,
    HessianInteractions,
    Poly,
    PolyHessians,
    int_batches,
    interrupted,
    poly_hessians,
    samples_seen,
)

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # the repository (tests/dataset/..)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank of the two-process gloo run (executed as a script by the test)."""
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=40))
    model = Poly().eval()
    method = PolyHessians(model)
    batches = int_batches()
    report = {}
    try:
        plain = explain_dataset(method, batches, reduce="mean", progress=False)
        ckpt = os.path.join(out, "dist.ckpt")
        try:
            explain_dataset(method, interrupted(batches, 5), reduce="mean", checkpoint=ckpt,
                            checkpoint_every=2, progress=False)
        except RuntimeError as err:
            report["interrupt"] = str(err)
        box = {}
        report["resumed_samples"] = samples_seen(lambda: box.update(r=explain_dataset(
            method, batches, reduce="mean", checkpoint=ckpt, checkpoint_every=2,
            progress=False)), PolyHessians)
        resumed = box["r"]
        # Pre-sharded data of unequal length: rank 0 gets 3 batches, rank 1 one.
        mine = batches[:3] if rank == 0 else batches[3:4]
        sharded = explain_dataset(method, mine, reduce="max_abs", shard="none",
                                  checkpoint=os.path.join(out, "none.ckpt"),
                                  checkpoint_every=1, progress=False)
        # Resuming pre-sharded data checks each rank's batches against its own record.
        report["presharded_resumed_samples"] = samples_seen(lambda: explain_dataset(
            method, mine, reduce="max_abs", shard="none",
            checkpoint=os.path.join(out, "none.ckpt"), progress=False), PolyHessians)
        changed = [b.clone() for b in mine]
        if rank == 1:
            changed[0][0, 0] += 1
        try:
            explain_dataset(method, changed, reduce="max_abs", shard="none",
                            checkpoint=os.path.join(out, "none.ckpt"), progress=False)
        except Exception as err:  # rank 1: its own refusal; rank 0: the remote failure
            report["presharded_changed"] = f"{type(err).__name__}: {err}"

        def fail_on_rank1(b):
            if rank == 1:
                raise ValueError("bad batch on rank 1")
            return Batch(b)

        try:
            explain_dataset(method, batches, unpack=fail_on_rank1, progress=False)
        except Exception as err:  # rank 0: the remote failure; rank 1: its own
            report["failure"] = f"{type(err).__name__}: {err}"
        try:  # rank 1 sees the batches in another order (a shuffled loader)
            explain_dataset(method, batches if rank == 0 else batches[::-1], progress=False)
        except ValueError as err:
            report["shuffled"] = str(err)
        torch.save({k: v.as_dict() for k, v in
                    {"plain": plain, "resumed": resumed, "sharded": sharded}.items()},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(report, f)
        dist.destroy_process_group()


def test_two_process_gloo_equals_one_process(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", str(r), "2", str(port),
                          str(tmp_path)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
        for r in range(2)
    ]
    deadline = time.monotonic() + 90  # generous: CI machines are shared
    logs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out.decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)

    model = Poly().eval()
    batches = int_batches()
    ref = explain_dataset(HessianInteractions(model), batches, reduce="mean", progress=False)
    ref_max = explain_dataset(PolyHessians(model), batches[:4], reduce="max_abs",
                              progress=False)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank, (rep, res) in enumerate(zip(reports, results)):
        for name in ("plain", "resumed"):
            assert res[name]["count"] == ref.count == sum(SIZES)
            # Integer sums: exact whatever the split between ranks.
            assert torch.equal(res[name]["value"], ref.value)
            torch.testing.assert_close(res[name]["std"], ref.std, rtol=1e-12, atol=1e-12)
        assert res["sharded"]["count"] == sum(SIZES[:4])
        assert torch.equal(res["sharded"]["value"], ref_max.value)
        assert rep["interrupt"] == "simulated crash"
        # Checkpoint at batch 4; round-robin: rank 0 redoes batches 4 and 6, rank 1 batch 5.
        assert rep["resumed_samples"] == (SIZES[4] + SIZES[6] if rank == 0 else SIZES[5])
        assert "bad batch on rank 1" in rep["failure"]
        assert "ranks see different first batches" in rep["shuffled"]
    assert reports[0]["failure"].startswith("_RemoteFailure: explain_dataset failed on rank 1")
    # Pre-sharded resume: nothing recomputed for the same data; rank 1's changed
    # batch is refused there and reported on rank 0.
    assert [rep["presharded_resumed_samples"] for rep in reports] == [0, 0]
    assert reports[1]["presharded_changed"].startswith("CheckpointError")
    assert "batch 0 differs" in reports[1]["presharded_changed"]
    assert reports[0]["presharded_changed"].startswith(
        "_RemoteFailure: explain_dataset failed on rank 1: CheckpointError")
    # The finished two-process checkpoint resumes in one process (round-robin
    # shards depend only on the batch index).
    out = {}
    seen = samples_seen(lambda: out.update(r=explain_dataset(
        PolyHessians(model), batches, reduce="mean",
        checkpoint=tmp_path / "dist.ckpt", progress=False)), PolyHessians)
    assert seen == 0 and torch.equal(out["r"].value, ref.value)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    # Import ourselves as tests.dataset.test_distributed so the classes (part of
    # checkpoint fingerprints) have the same qualified names as in the pytest process.
    from tests.dataset.test_distributed import _worker as worker

    worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])


# --------------------------------------------------------------------------- one process


class Ranking(NamedTuple):
    indices: torch.Tensor
    scores: torch.Tensor


class PolyTopPairs:
    """Poly's two strongest Hessian pairs per sample, as a sparse ranking."""

    def __init__(self, model: Poly) -> None:
        self.forward_func = model

    def attribute(self, inputs, target=None):
        h = poly_hessians(self.forward_func, inputs)
        pairs = torch.triu_indices(5, 5, offset=1).t()
        values = h[:, pairs[:, 0], pairs[:, 1]]
        top = values.abs().argsort(dim=1, descending=True, stable=True)[:, :2]
        return Ranking(pairs[top], values.gather(1, top))


def test_one_process_group_takes_the_collective_path(tmp_path, monkeypatch):
    import torch.distributed as dist

    model = Poly().eval()
    batches = int_batches()
    runs = {
        "dense": (PolyHessians(model), "mean"),
        "max": (PolyHessians(model), "max_abs"),
        "sets": (PolyTopPairs(model), "mean_abs"),
    }
    alone = {k: explain_dataset(m, batches, reduce=r, progress=False)
             for k, (m, r) in runs.items()}
    calls = []
    for name in ("all_reduce", "all_gather_object"):
        real = getattr(dist, name)
        monkeypatch.setattr(dist, name, lambda *a, _real=real, _name=name, **kw: (
            calls.append(_name), _real(*a, **kw))[1])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        for key, (method, reduce) in runs.items():
            calls.clear()
            r = explain_dataset(method, batches, reduce=reduce, progress=False,
                                checkpoint=tmp_path / f"{key}.ckpt", checkpoint_every=3)
            assert "all_gather_object" in calls
            assert ("all_reduce" in calls) == (key != "sets")
            assert r.count == alone[key].count == sum(SIZES)
            torch.testing.assert_close(r.value, alone[key].value, rtol=1e-12, atol=0)
            if key == "sets":
                assert torch.equal(r.sets, alone[key].sets)
                assert torch.equal(r.hits, alone[key].hits)
    finally:
        dist.destroy_process_group()


def test_reduction_device_follows_the_backend():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert reduction_device("gloo", None) == cpu
    assert reduction_device("cpu:gloo,cuda:gloo", torch.device("cuda", 0)) == cpu
    assert reduction_device("nccl", None) == cuda  # NCCL reduces CUDA tensors only
    assert reduction_device("cuda:nccl", torch.device("cpu")) == cuda
    # Both: where the run computes (CPU when it does not say).
    assert reduction_device("cpu:gloo,cuda:nccl", None) == cpu
    assert reduction_device("cpu:gloo,cuda:nccl", torch.device("cuda", 1)) == cuda
    assert reduction_device("cpu:gloo,cuda:nccl", torch.device("cpu")) == cpu


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_nccl_one_process_on_one_gpu_matches_cpu(tmp_path):
    import torch.distributed as dist

    model = Poly().eval()
    batches = int_batches()
    runs = {
        "dense": (PolyHessians, "mean"),
        "max": (PolyHessians, "max_abs"),
        "sets": (PolyTopPairs, "mean_abs"),
        "autodiff": (HessianInteractions, "rms"),
    }
    alone = {k: explain_dataset(cls(model), batches, reduce=r, progress=False)
             for k, (cls, r) in runs.items()}
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        gpu_model = Poly().eval().cuda()
        for key, (cls, reduce) in runs.items():
            path = tmp_path / f"{key}.ckpt"
            with pytest.raises(RuntimeError, match="simulated crash"):
                explain_dataset(cls(gpu_model), interrupted(batches, 5), reduce=reduce,
                                device="cuda", checkpoint=path, checkpoint_every=2,
                                progress=False)
            r = explain_dataset(cls(gpu_model), batches, reduce=reduce, device="cuda",
                                checkpoint=path, checkpoint_every=2, progress=False)
            assert r.count == sum(SIZES) and r.value.device.type == "cpu"
            torch.testing.assert_close(r.value, alone[key].value, rtol=1e-9, atol=1e-12)
        with pytest.raises(ValueError, match="torch.cuda.set_device"):
            explain_dataset(PolyHessians(gpu_model), batches, progress=False,
                            device=f"cuda:{torch.cuda.device_count()}")
    finally:
        dist.destroy_process_group()
