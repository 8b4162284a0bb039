"""explain_dataset end to end: Captum methods, tuple inputs, extra args, devices."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from captum_higher_order.dataset import (
    explain_dataset,
)
from captum_higher_order.hessian import hessian
from tests.dataset.helpers import (
    HessianInteractions,
)
from tests.models import mlp, two_input_net

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


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
