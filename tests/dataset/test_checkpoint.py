"""Checkpoints: resume equals the uninterrupted run; foreign, corrupt and
mismatched files are refused and untouched; writes are atomic."""

from __future__ import annotations

import os

import pytest
import torch
from captum.attr import Saliency

from captum_higher_order.dataset import (
    CheckpointError,
    explain_dataset,
)
from captum_higher_order.dataset.checkpoint import write_checkpoint as _write_checkpoint
from tests.dataset.helpers import (
    SIZES,
    HessianInteractions,
    Poly,
    PolyHessians,
    int_batches,
    interrupted,
    samples_seen,
)

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


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


# --------------------------------------------------------------------------- what resume checks


def _generator(batches):
    yield from batches  # no len(): only reading the batches tells how many there are


def test_resume_refuses_data_of_another_length(tmp_path):
    # The case: a checkpoint of 10 batches answered a run over 3 batches
    # with count=80, batches=10 (it fingerprinted the first batch only).
    model = Poly().eval()
    ten = int_batches(sizes=[8] * 10)
    path = tmp_path / "run.ckpt"
    full = explain_dataset(PolyHessians(model), ten, checkpoint=path, checkpoint_every=4,
                           progress=False)
    assert full.count == 80 and full.batches == 10
    before = path.read_bytes()
    for data, match in [
        (ten[:3], "data of 10 batches, but the data now have 3"),  # refused before any work
        (_generator(ten[:3]), "at least 10 batches, but the data ended after 3"),
        (ten + ten[:2], "data of 10 batches, but the data now have 12"),
        (_generator(ten + ten[:2]), "data of 10 batches, but the data go on past that"),
    ]:
        seen = PolyHessians.seen
        with pytest.raises(CheckpointError, match=match):
            explain_dataset(PolyHessians(model), data, checkpoint=path, checkpoint_every=4,
                            progress=False)
        # Refused before explaining anything, the checkpoint untouched.
        assert PolyHessians.seen == seen and path.read_bytes() == before
    # An interrupted run over unsized data resumes over the same data, sized or not.
    path = tmp_path / "partial.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        explain_dataset(PolyHessians(model), interrupted(ten, 6), checkpoint=path,
                        checkpoint_every=4, progress=False)
    resumed = explain_dataset(PolyHessians(model), ten, checkpoint=path, progress=False)
    assert resumed.count == 80 and torch.equal(resumed.value, full.value)
    with pytest.raises(CheckpointError, match="ended after 9"):
        explain_dataset(PolyHessians(model), _generator(ten[:9]), checkpoint=path,
                        progress=False)


def test_resume_refuses_data_changed_after_the_first_batch(tmp_path):
    model = Poly().eval()
    batches = int_batches()
    labels = [torch.arange(len(b)) for b in batches]
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        explain_dataset(PolyHessians(model), interrupted(list(zip(batches, labels)), 5),
                        checkpoint=path, checkpoint_every=2, progress=False)
    before = path.read_bytes()
    changed = [b.clone() for b in batches]
    changed[2][0, 0] += 1  # batch 2 of the 4 that the checkpoint covers
    relabelled = [lab.clone() for lab in labels]
    relabelled[3][0] = 5
    for data, index in [(list(zip(changed, labels)), 2), (list(zip(batches, relabelled)), 3)]:
        seen = PolyHessians.seen
        with pytest.raises(CheckpointError, match=f"batch {index} differs"):
            explain_dataset(PolyHessians(model), data, checkpoint=path, checkpoint_every=2,
                            progress=False)
        assert PolyHessians.seen == seen and path.read_bytes() == before
    # The same data resume, recomputing only the batches after the checkpoint.
    seen = samples_seen(lambda: explain_dataset(
        PolyHessians(model), list(zip(batches, labels)), checkpoint=path, checkpoint_every=2,
        progress=False), PolyHessians)
    assert seen == sum(SIZES[4:])


def test_mismatch_message_says_what_differs(tmp_path):
    model = Poly().eval()
    path = tmp_path / "run.ckpt"
    explain_dataset(PolyHessians(model), int_batches(), checkpoint=path, progress=False)
    with pytest.raises(CheckpointError,
                       match=r'reduce \("mean_abs" in the checkpoint, "rms" now\)'):
        explain_dataset(PolyHessians(model), int_batches(), reduce="rms", checkpoint=path,
                        progress=False)
    with pytest.raises(CheckpointError, match=r"attribute_kwargs \(objective\)"):
        explain_dataset(HessianInteractions(model), int_batches(), checkpoint=path,
                        attribute_kwargs={"objective": "output"}, progress=False)
    old = tmp_path / "old.ckpt"
    _write_checkpoint(str(old), {"format": 1, "fingerprint": "{}", "batches": 1,
                                 "stats": {"count": 0, "sums": [], "m2s": [], "maxes": []}})
    with pytest.raises(CheckpointError, match="format 1, this version reads format 2"):
        explain_dataset(PolyHessians(model), int_batches(), checkpoint=old, progress=False)


def test_a_stale_temporary_file_from_a_killed_write_is_removed(tmp_path):
    model = Poly().eval()
    path = tmp_path / "run.ckpt"
    # What a kill between mkstemp and os.replace in write_checkpoint leaves behind.
    stale = tmp_path / ".run.ckpt.k1ll3d.tmp"
    stale.write_bytes(b"CHO-XDS1 half a checkpoint")
    other = tmp_path / ".other.ckpt.abc.tmp"  # another checkpoint's: not ours to remove
    other.write_bytes(b"")
    with pytest.warns(UserWarning, match=r"Removed 1 temporary file.*\.run\.ckpt\.k1ll3d\.tmp"):
        r = explain_dataset(PolyHessians(model), int_batches(), checkpoint=path,
                            checkpoint_every=3, progress=False)
    assert r.count == sum(SIZES)
    assert sorted(os.listdir(tmp_path)) == [".other.ckpt.abc.tmp", "run.ckpt"]
