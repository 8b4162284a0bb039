"""Batches: layouts, unpack, bad input, sharding mode and the progress bar."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from captum_higher_order.dataset import (
    Batch,
    explain_dataset,
)
from tests.dataset.helpers import (
    HessianInteractions,
    Poly,
    PolyHessians,
)
from tests.models import mlp

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


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

    from captum_higher_order.dataset.batching import shard_mode as _shard_mode

    ds = TensorDataset(torch.zeros(10, 5, dtype=torch.float64))
    sampler = DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)
    assert _shard_mode("auto", DataLoader(ds, sampler=sampler, batch_size=2)) == "none"
    assert _shard_mode("auto", DataLoader(ds, batch_size=2)) == "batch"
    assert _shard_mode("batch", DataLoader(ds, sampler=sampler)) == "batch"
    pytest.importorskip("tqdm")
    model = Poly().eval()
    r = explain_dataset(PolyHessians(model), DataLoader(ds, batch_size=4), progress=True)
    assert r.batches == 3 and "3/3" in capsys.readouterr().err
