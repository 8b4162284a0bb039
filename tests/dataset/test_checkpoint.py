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
