"""explain_dataset: streaming equals batch, resume, checkpoint safety, gloo sharding.

Oracles: closed-form Hessians of an integer polynomial (exact in float64, so
streamed sums must match bit for bit), Captum's own methods run on the whole data
at once, torch's mean/std/max over the stacked per-sample results, and the
single-process run for the two-process ``gloo`` run (spawned by the test itself).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from captum.attr import GradientAttribution, IntegratedGradients, Saliency
from torch import nn

from captum_higher_order._captum import log_usage
from captum_higher_order.dataset import (
    Batch,
    CheckpointError,
    _write_checkpoint,
    explain_dataset,
)
from captum_higher_order.hessian import hessian
from tests.models import mlp, two_input_net

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = [5, 3, 7, 1, 4, 6, 2]  # uneven batches: 7 of them, 28 samples


# --------------------------------------------------------------------------- fixtures


class Poly(nn.Module):
    """f(x) = x^T A x + 2 x0^3 + x1 x2 x3 with integer A: integer Hessians
    ``A + A^T + 12 x0 e0 e0^T + (x3, x2, x1 on the (1,2), (1,3), (2,3) pairs)``."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.register_buffer("A", torch.randint(-3, 4, (5, 5), generator=gen).double())

    def forward(self, x):
        quad = torch.einsum("bi,ij,bj->b", x, self.A, x)
        return quad + 2 * x[:, 0] ** 3 + x[:, 1] * x[:, 2] * x[:, 3]


def poly_hessians(model: Poly, x: torch.Tensor) -> torch.Tensor:
    """Closed form of Poly's per-sample Hessians, written out by hand."""
    h = (model.A + model.A.T).expand(x.shape[0], 5, 5).clone()
    h[:, 0, 0] += 12 * x[:, 0]
    for (i, j), k in {(1, 2): 3, (1, 3): 2, (2, 3): 1}.items():
        h[:, i, j] += x[:, k]
        h[:, j, i] += x[:, k]
    return h


class HessianInteractions(GradientAttribution):
    """Test-only interaction attribution: the exact per-sample Hessian (B, F, F)."""

    #: Samples explained so far, on the class so the instance's configuration
    #: (part of the checkpoint fingerprint) does not change.
    seen = 0

    def __init__(self, forward_func):
        super().__init__(forward_func)

    @log_usage()
    def attribute(self, inputs, target=None, additional_forward_args=None, objective="output"):
        type(self).seen += inputs[0].shape[0] if isinstance(inputs, tuple) else inputs.shape[0]
        return hessian(self.forward_func, inputs, target=target,
                       additional_forward_args=additional_forward_args, objective=objective)


class PolyHessians:
    """Poly's Hessians in closed form, as an attribution (no autodiff: the
    distributed workers stay light)."""

    seen = 0

    def __init__(self, model: Poly) -> None:
        self.forward_func = model

    def attribute(self, inputs, target=None):
        type(self).seen += inputs.shape[0]
        return poly_hessians(self.forward_func, inputs)


def samples_seen(run, cls=None) -> int:
    """How many samples ``cls`` (HessianInteractions) explains while ``run()`` runs."""
    cls = cls or HessianInteractions
    start = cls.seen
    run()
    return cls.seen - start


def int_batches(seed: int = 0, sizes=SIZES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(-4, 5, (n, 5), generator=gen).double() for n in sizes]


def interrupted(batches, after: int):
    """Yield ``after`` batches, then fail as a crash would."""
    for i, b in enumerate(batches):
        if i == after:
            raise RuntimeError("simulated crash")
        yield b


# --------------------------------------------------------------------------- streaming


def test_streaming_equals_batch_exactly_for_integer_sums():
    model = Poly().eval()
    batches = int_batches()
    h = poly_hessians(model, torch.cat(batches))
    n = h.shape[0]
    method = HessianInteractions(model)
    for reduce, q in [("mean", h), ("mean_abs", h.abs()), ("rms", h ** 2)]:
        r = explain_dataset(method, batches, reduce=reduce, progress=False)
        assert r.count == n and r.batches == len(SIZES) and r.kind == "interaction"
        # Integer sums are exact in float64 whatever the order: bit-for-bit.
        expected = q.sum(0) / n
        assert torch.equal(r.value, expected.sqrt() if reduce == "rms" else expected)
        torch.testing.assert_close(r.std, q.std(0), rtol=1e-12, atol=1e-12)
        if reduce != "rms":
            torch.testing.assert_close(r.stderr, q.std(0) / n ** 0.5, rtol=1e-12, atol=1e-12)
    r = explain_dataset(method, batches, reduce="max_abs", progress=False)
    assert torch.equal(r.value, h.abs().amax(0))
    assert torch.isnan(r.stderr).all()


def test_rms_stderr_is_delta_method():
    model = Poly().eval()
    batches = int_batches(seed=1)
    q = poly_hessians(model, torch.cat(batches)) ** 2
    r = explain_dataset(HessianInteractions(model), batches, reduce="rms", progress=False)
    rms = q.mean(0).sqrt()
    expected = torch.where(rms > 0, q.std(0) / len(q) ** 0.5 / (2 * rms), torch.zeros_like(rms))
    torch.testing.assert_close(r.stderr, expected, rtol=1e-10, atol=1e-12)


def test_welford_is_stable_with_a_large_offset():
    # Naive E[q^2] - E[q]^2 loses every digit here; the pairwise update does not.
    class Offset:
        forward_func = None

        def attribute(self, inputs, target=None):
            return inputs + 1e9

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    r = explain_dataset(Offset(), list(x.split(6)), reduce="mean", progress=False)
    torch.testing.assert_close(r.std, x.std(0), rtol=1e-6, atol=0)


def test_captum_methods_over_a_dataloader_match_the_full_batch():
    model = mlp()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=gen)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    ig = IntegratedGradients(model)
    full = ig.attribute(x, target=y, n_steps=16)
    r = explain_dataset(ig, loader, target="label", reduce="mean",
                        attribute_kwargs={"n_steps": 16}, progress=False)
    assert r.kind == "map" and r.count == 30
    torch.testing.assert_close(r.value, full.mean(0), rtol=1e-12, atol=1e-14)
    pred = model(x).argmax(1)
    sal = Saliency(model).attribute(x, target=pred)
    r = explain_dataset(Saliency(model), loader, target="predicted", reduce="max_abs",
                        progress=False)
    torch.testing.assert_close(r.value, sal.abs().amax(0), rtol=1e-12, atol=1e-15)
    r = explain_dataset(Saliency(model), loader, target=2, reduce="mean_abs", progress=False)
    torch.testing.assert_close(r.value, Saliency(model).attribute(x, target=2).mean(0),
                               rtol=1e-12, atol=1e-14)


def test_tuple_inputs_and_additional_forward_args():
    model = two_input_net()
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    x2 = torch.randn(9, 2, 2, generator=gen, dtype=torch.float64)
    scale = torch.rand(9, generator=gen, dtype=torch.float64) + 0.5
    y = torch.tensor([0, 1, 2] * 3)
    batches = [((x1[s], x2[s]), y[s], (scale[s],)) for s in (slice(0, 4), slice(4, 9))]
    sal = Saliency(model).attribute((x1, x2), target=y, additional_forward_args=(scale,))
    r = explain_dataset(Saliency(model), batches, target="label", reduce="mean", progress=False)
    assert isinstance(r.value, tuple) and r.kind == "map"
    for got, ref in zip(r.value, sal):
        torch.testing.assert_close(got, ref.mean(0), rtol=1e-12, atol=1e-14)
    top = r.rank(1)[0]
    flat = [v.reshape(-1) for v in r.value]
    best = max(((i, j) for i, f in enumerate(flat) for j in range(len(f))),
               key=lambda ij: abs(flat[ij[0]][ij[1]]))
    assert top.features[0] == best[0]
    assert r.value[best[0]].reshape(-1)[best[1]].item() == top.value
    # The interaction method sees one (F, F) over both inputs: 3 + 4 features.
    r = explain_dataset(HessianInteractions(model), batches, target="label",
                        attribute_kwargs={"objective": "log_softmax"}, progress=False)
    h = hessian(model, (x1, x2), target=y, additional_forward_args=(scale,),
                objective="log_softmax")
    torch.testing.assert_close(r.value, h.abs().mean(0), rtol=1e-10, atol=1e-12)


def test_rank_finds_planted_pairs():
    class Planted(nn.Module):
        def forward(self, x):  # pairs (0, 3) strong, (1, 2) weaker, 4 additive
            return 5 * x[:, 0] * x[:, 3] + x[:, 1] * x[:, 2] + torch.sin(x[:, 4])

    gen = torch.Generator().manual_seed(2)
    batches = list(torch.randn(20, 5, generator=gen, dtype=torch.float64).split(8))
    r = explain_dataset(HessianInteractions(Planted()), batches, progress=False)
    ranked = r.rank(3, feature_names=list("abcde"))
    assert [e.features for e in ranked[:2]] == [(0, 3), (1, 2)]
    assert ranked[0].names == ("a", "d")
    assert ranked[0].value == pytest.approx(5.0) and ranked[0].stderr == pytest.approx(0.0)
    assert ranked[2].value == pytest.approx(0.0)  # every other pair is zero
    # With the diagonal, the pure second derivative |d^2 sin(x4)| = |sin(x4)| comes third.
    diag = r.rank(3, include_diagonal=True)
    assert [e.features for e in diag] == [(0, 3), (1, 2), (4, 4)]
    x4 = torch.cat(batches)[:, 4]
    assert diag[2].value == pytest.approx(x4.sin().abs().mean().item(), rel=1e-10)


@pytest.mark.parametrize("reduce", ["mean_abs", "max_abs"])
def test_cross_derivatives_pairs_and_triples(reduce):
    mod = pytest.importorskip("captum_higher_order.attr.cross_derivatives")

    class Planted(nn.Module):  # 2 x0 x1 + 1.5 x2 x3 x4 + sin(x5)
        def forward(self, x):
            return 2 * x[:, 0] * x[:, 1] + 1.5 * x[:, 2] * x[:, 3] * x[:, 4] + x[:, 5].sin()

    gen = torch.Generator().manual_seed(4)
    x = torch.rand(21, 6, generator=gen, dtype=torch.float64) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)
    cd = mod.CrossDerivatives(Planted())
    r = explain_dataset(cd, loader, reduce=reduce, progress=False)
    # Oracle: the closed-form mixed partials d^2 f / dx_i dx_j of the planted function.
    pairs = torch.zeros(21, 6, 6, dtype=torch.float64)
    pairs[:, 0, 1] = pairs[:, 1, 0] = 2.0
    for i, j, k in [(2, 3, 4), (2, 4, 3), (3, 4, 2)]:
        pairs[:, i, j] = pairs[:, j, i] = 1.5 * x[:, k]
    expected = pairs.abs().mean(0) if reduce == "mean_abs" else pairs.abs().amax(0)
    off = ~torch.eye(6, dtype=torch.bool)
    torch.testing.assert_close(r.value[off], expected[off], rtol=1e-10, atol=1e-12)
    assert [e.features for e in r.rank(2)][0] == (0, 1)
    if reduce == "mean_abs":  # the method's own streaming aggregation agrees
        glob = cd.global_interactions(x, batch_size=5)
        torch.testing.assert_close(r.value, glob.scores.to(r.value), rtol=1e-10, atol=1e-12)
    # Order 3 (dense (B, F, F, F)): d^3 f / dx2 dx3 dx4 = 1.5 is the only triple.
    r3 = explain_dataset(cd, loader, reduce=reduce, attribute_kwargs={"order": 3},
                         progress=False)
    top = r3.rank(2)
    assert r3.kind == "interaction" and top[0].features == (2, 3, 4)
    assert top[0].value == pytest.approx(1.5, rel=1e-8) and abs(top[1].value) < 1e-8


# --------------------------------------------------------------------------- checkpoints


def test_interrupt_and_resume_gives_the_uninterrupted_result(tmp_path):
    model = Poly().eval()
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randn(n, 5, generator=gen, dtype=torch.float64) for n in SIZES]
    method = HessianInteractions(model)
    path = tmp_path / "run.ckpt"
    reference = explain_dataset(method, batches, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        explain_dataset(method, interrupted(batches, 5), checkpoint=path,
                        checkpoint_every=2, progress=False)
    assert path.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    out = {}
    seen = samples_seen(lambda: out.update(r=explain_dataset(
        method, batches, checkpoint=path, checkpoint_every=2, progress=False)))
    resumed = out["r"]
    # Checkpoint at batch 4 (every 2): batches 4..6 are recomputed, 0..3 are not.
    assert seen == sum(SIZES[4:])
    assert resumed.count == reference.count and resumed.batches == len(SIZES)
    assert torch.equal(resumed.value, reference.value)
    assert torch.equal(resumed.stderr, reference.stderr)
    # A finished checkpoint answers a rerun without computing anything.
    seen = samples_seen(lambda: out.update(r=explain_dataset(
        method, batches, checkpoint=path, progress=False)))
    assert seen == 0 and torch.equal(out["r"].value, reference.value)


def test_mismatched_checkpoint_is_refused_and_untouched(tmp_path):
    model = Poly().eval()
    batches = int_batches()
    path = tmp_path / "run.ckpt"
    explain_dataset(HessianInteractions(model), batches, checkpoint=path, progress=False)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="different run.*reduce"):
        explain_dataset(HessianInteractions(model), batches, reduce="mean",
                        checkpoint=path, progress=False)
    other = Poly().eval()
    other.A[0, 0] += 1  # other weights
    with pytest.raises(CheckpointError, match="method_config"):
        explain_dataset(HessianInteractions(other), batches, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="first_batch"):
        explain_dataset(HessianInteractions(model), int_batches(seed=9), checkpoint=path,
                        progress=False)
    with pytest.raises(CheckpointError, match="method"):
        explain_dataset(Saliency(model), batches, checkpoint=path, progress=False)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "empty"])
def test_corrupt_checkpoint_is_refused_and_untouched(tmp_path, damage):
    model = Poly().eval()
    batches = int_batches()
    path = tmp_path / "run.ckpt"
    explain_dataset(HessianInteractions(model), batches, checkpoint=path, progress=False)
    blob = path.read_bytes()
    damaged = {
        "truncate": blob[: len(blob) // 2],
        "flip": blob[:-20] + bytes([blob[-20] ^ 0xFF]) + blob[-19:],
        "foreign": b"PK\x03\x04 some other file",
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)
    match = "not an explain_dataset checkpoint" if damage in ("foreign", "empty") else "corrupt"
    with pytest.raises(CheckpointError, match=match):
        explain_dataset(HessianInteractions(model), batches, checkpoint=path, progress=False)
    assert path.read_bytes() == damaged


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    _write_checkpoint(str(path), {"x": 1})
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _write_checkpoint(str(path), {"x": 2})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt"]


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_say_what_to_change():
    model = Poly().eval()
    method = HessianInteractions(model)
    with pytest.raises(ValueError, match="no samples"):
        explain_dataset(method, [], progress=False)
    with pytest.raises(ValueError, match="no samples"):
        explain_dataset(method, [torch.zeros(0, 5, dtype=torch.float64)], progress=False)
    bad = [torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)]
    with pytest.raises(ValueError, match="Batch 1 has per-sample input shapes"):
        explain_dataset(method, bad, progress=False)
    with pytest.raises(ValueError, match="target='label' but batch 0 has no labels"):
        explain_dataset(Saliency(mlp()), [torch.zeros(2, 6, dtype=torch.float64)],
                        target="label", progress=False)
    x = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="integer class labels"):
        explain_dataset(Saliency(mlp()), [(x, torch.zeros(2))], target="label", progress=False)
    with pytest.raises(ValueError, match="target='blue'"):
        explain_dataset(Saliency(mlp()), [x], target="blue", progress=False)
    with pytest.raises(ValueError, match="Unknown reduce"):
        explain_dataset(Saliency(mlp()), [x], reduce="median", progress=False)
    with pytest.raises(ValueError, match="return_convergence_delta"):
        explain_dataset(IntegratedGradients(mlp()), [x], target=0, progress=False,
                        attribute_kwargs={"return_convergence_delta": True})
    with pytest.raises(TypeError, match="iterable of batches"):
        explain_dataset(Saliency(mlp()), x, progress=False)
    with pytest.raises(ValueError, match="ambiguous"):
        explain_dataset(Saliency(mlp()), [(x, x, x, x)], progress=False)


def test_custom_unpack_and_dict_batches():
    model = mlp()
    x = torch.randn(6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    ref = Saliency(model).attribute(x, target=y).mean(0)
    dicts = [{"x": x[:4], "y": y[:4]}, {"x": x[4:], "y": y[4:]}]
    r = explain_dataset(Saliency(model), dicts, target="label", reduce="mean", progress=False)
    torch.testing.assert_close(r.value, ref, rtol=1e-12, atol=1e-14)
    pairs = [(y[:3], x[:3]), (y[3:], x[3:])]  # labels first: needs unpack
    r = explain_dataset(Saliency(model), pairs, target="label", reduce="mean",
                        unpack=lambda b: Batch(b[1], b[0]), progress=False)
    torch.testing.assert_close(r.value, ref, rtol=1e-12, atol=1e-14)


def test_distributed_sampler_means_presharded_and_progress_bar_runs(capsys):
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from captum_higher_order.dataset import _shard_mode

    ds = TensorDataset(torch.zeros(10, 5, dtype=torch.float64))
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)
    assert _shard_mode("auto", DataLoader(ds, sampler=sampler, batch_size=2)) == "none"
    assert _shard_mode("auto", DataLoader(ds, batch_size=2)) == "batch"
    assert _shard_mode("batch", DataLoader(ds, sampler=sampler)) == "batch"
    pytest.importorskip("tqdm")
    model = Poly().eval()
    r = explain_dataset(PolyHessians(model), DataLoader(ds, batch_size=4), progress=True)
    assert r.batches == 3 and "3/3" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device_matches_cpu():
    model = mlp()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (20,), generator=gen)
    batches = list(zip(x.split(6), y.split(6)))
    cpu = explain_dataset(HessianInteractions(model), batches, target="label", progress=False,
                          attribute_kwargs={"objective": "log_softmax"})
    gpu = explain_dataset(HessianInteractions(mlp().cuda()), batches, target="label",
                          device="cuda", progress=False,
                          attribute_kwargs={"objective": "log_softmax"})
    torch.testing.assert_close(gpu.value, cpu.value, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- distributed


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
    # The finished two-process checkpoint resumes in one process (round-robin
    # shards depend only on the batch index).
    out = {}
    seen = samples_seen(lambda: out.update(r=explain_dataset(
        PolyHessians(model), batches, reduce="mean",
        checkpoint=tmp_path / "dist.ckpt", progress=False)), PolyHessians)
    assert seen == 0 and torch.equal(out["r"].value, ref.value)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    # Import ourselves as tests.test_dataset so the classes (part of checkpoint
    # fingerprints) have the same qualified names as in the pytest process.
    from tests.test_dataset import _worker as worker

    worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
