"""TaylorCAM against closed forms, explicit Hessians and Captum's LayerGradCam."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.taylor_cam import TaylorCAM, pair_centers, top_region_pairs
from tests.contract.harness import snapshot_model
from tests.models import small_cnn

torchvision = pytest.importorskip("torchvision")


# --------------------------------------------------------------------------- models


class ProductHead(nn.Module):
    """A 2x2/stride-2 conv gives a 3x3 grid of C channels; the class-0 logit is
    ``y = a * b`` with ``a``, ``b`` the channel sums of cells ``r`` and ``s``;
    the class-1 logit is 0."""

    def __init__(self, r: int, s: int, channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 2, stride=2)
        self.r, self.s = r, s

    def forward(self, x: Tensor) -> Tensor:
        cells = self.conv(x).flatten(2)
        y = cells[:, :, self.r].sum(1) * cells[:, :, self.s].sum(1)
        return torch.stack([y, torch.zeros_like(y)], dim=1)


def _product_model(r: int = 1, s: int = 8):
    torch.manual_seed(3)
    return ProductHead(r, s).double().eval()


def _cell_sums(model: ProductHead, x: Tensor):
    """The oracle's ``a`` and ``b``, from the conv alone (no TaylorCAM code)."""
    with torch.no_grad():
        cells = F.conv2d(x, model.conv.weight, model.conv.bias, stride=2).flatten(2)
    return cells[:, :, model.r].sum(1), cells[:, :, model.s].sum(1)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _all_hooks_empty(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks for m in model.modules()
    )


# --------------------------------------------------------------------------- closed form


def test_product_head_output_objective_closed_form():
    # y = a b, so d2y / dA[k, r] dA[l, s] = 1 for all channels k, l: with C
    # channels M[r, s] = C a, M[s, r] = C b, every other entry 0.
    model, channels = _product_model(), 3
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    a, b = _cell_sums(model, x)
    cam = TaylorCAM(model, model.conv)
    cross = cam.cross_terms(x, target=0, objective="output")
    expected = torch.zeros(4, 9, 9, dtype=torch.float64)
    expected[:, 1, 8] = channels * a
    expected[:, 8, 1] = channels * b
    torch.testing.assert_close(cross, expected, rtol=1e-12, atol=1e-12)
    pairs = cam.attribute(x, target=0, objective="output")
    torch.testing.assert_close(pairs[:, 1, 8], channels**2 * (a**2 + b**2), rtol=1e-12, atol=0)


def test_product_head_log_softmax_closed_form():
    # y = log sigmoid(ab) (two logits ab and 0). With g' = sigmoid(-ab) and
    # g'' = -sigmoid(ab) sigmoid(-ab), H[(k,r),(l,s)] = g' + g'' a b, so
    # M[r, s] = C a (g' + g'' ab), M[s, r] = C b (g' + g'' ab),
    # M[r, r] = C a b^2 g'', M[s, s] = C b a^2 g''; the pair score at (r, s) is
    # C^2 (g' + g'' ab)^2 (a^2 + b^2) and every other pair is zero.
    model, channels = _product_model(2, 6), 3
    x = 0.5 * torch.randn(3, 1, 6, 6, dtype=torch.float64)
    a, b = _cell_sums(model, x)
    z = a * b
    g1, g2 = torch.sigmoid(-z), -torch.sigmoid(z) * torch.sigmoid(-z)
    cam = TaylorCAM(model, model.conv)
    cross = cam.cross_terms(x, target=[0, 0, 0])
    expected = torch.zeros(3, 9, 9, dtype=torch.float64)
    expected[:, 2, 6] = channels * a * (g1 + g2 * z)
    expected[:, 6, 2] = channels * b * (g1 + g2 * z)
    expected[:, 2, 2] = channels * a * b**2 * g2
    expected[:, 6, 6] = channels * b * a**2 * g2
    torch.testing.assert_close(cross, expected, rtol=1e-10, atol=1e-12)

    pairs = cam.attribute(x, target=0)
    score = channels**2 * (g1 + g2 * z) ** 2 * (a**2 + b**2)
    torch.testing.assert_close(pairs[:, 2, 6], score, rtol=1e-10, atol=0)
    torch.testing.assert_close(pairs[:, 6, 2], score, rtol=1e-10, atol=0)
    top = top_region_pairs(pairs, k=1)
    assert top.index[:, 0].tolist() == [[2, 6]] * 3
    off = pairs.clone()
    off[:, 2, 6] = off[:, 6, 2] = 0
    assert float(off.abs().max()) < 1e-20  # no other pair, diagonal zeroed


# --------------------------------------------------------------------------- Hessian oracle


def _explicit_cross_terms(model, x, target, layer_name="act1"):
    """M from a dense torch.func.hessian of the explicit tail of SmallCNN."""
    with torch.no_grad():
        acts = model.act1(model.conv1(x)) if layer_name == "act1" else None

    def score(a: Tensor, t: int) -> Tensor:
        h = model.act2(model.conv2(a.unsqueeze(0)))
        logits = model.fc(model.pool(h).flatten(1))
        return torch.log_softmax(logits, dim=1)[0, t]

    rows = []
    for i in range(x.shape[0]):
        a = acts[i]
        hess = torch.func.hessian(score)(a, target[i])  # (C, h, w, C, h, w)
        c, cells = a.shape[0], a[0].numel()
        hess = hess.reshape(c, cells, c, cells)
        rows.append(torch.einsum("kr,krls->rs", a.reshape(c, cells), hess))
    return torch.stack(rows), acts


def test_batched_hvps_equal_explicit_hessian():
    model = small_cnn()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    target = [0, 2, 1]
    expected, acts = _explicit_cross_terms(model, x, target)
    cam = TaylorCAM(model, model.act1)
    torch.testing.assert_close(cam.cross_terms(x, target), expected, rtol=1e-9, atol=1e-12)
    # The same activation seen as conv2's input (forward pre-hook path).
    by_input = TaylorCAM(model, model.conv2).cross_terms(
        x, target, attribute_to_layer_input=True
    )
    torch.testing.assert_close(by_input, expected, rtol=1e-9, atol=1e-12)
    # Reverse-over-reverse through the same hooks gives the same numbers.
    torch.testing.assert_close(
        cam.cross_terms(x, target, mode="rev_rev"), expected, rtol=1e-9, atol=1e-12
    )
    # Pair scores from M, zero diagonal.
    pairs = cam.attribute(x, target)
    explicit_pairs = expected**2 + expected.transpose(1, 2) ** 2
    explicit_pairs.diagonal(dim1=1, dim2=2).zero_()
    torch.testing.assert_close(pairs, explicit_pairs, rtol=1e-9, atol=1e-20)


@pytest.mark.parametrize("regions", [False, True])
def test_recorded_tail_equals_whole_network_path(regions):
    # The default path (reverse-over-reverse through the recorded tail, the
    # layers before `layer` run once) against the whole-network forward-over-
    # reverse path and the dense float64 torch.func oracle.
    model = small_cnn(seed=4)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    target = [2, 0, 1]
    expected, _ = _explicit_cross_terms(model, x, target)
    kwargs = {}
    if regions:
        quadrants = (torch.arange(8).view(8, 1) // 4) * 2 + torch.arange(8).view(1, 8) // 4
        kwargs["regions"] = quadrants
        onehot = F.one_hot(quadrants.flatten(), 4).to(torch.float64)  # (cells, 4)
        expected = onehot.T @ expected @ onehot
    cam = TaylorCAM(model, model.act1)
    tail = cam.cross_terms(x, target, chunk_size=5, **kwargs)
    whole = cam.cross_terms(x, target, mode="fwd_rev", **kwargs)
    torch.testing.assert_close(tail, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(tail, whole, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode,passes", [("auto", 1), ("rev_rev", 1), ("fwd_rev", 2)])
def test_recorded_tail_runs_the_layers_before_once(mode, passes):
    # The head (conv1) runs once on the recorded-tail path; the whole-network
    # path runs it again for the products (one chunk).
    model = small_cnn()
    calls = {"n": 0}

    def count(module, inp, out):
        calls["n"] += 1

    handle = model.conv1.register_forward_hook(count)
    try:
        TaylorCAM(model, model.act1).attribute(
            torch.randn(2, 1, 8, 8, dtype=torch.float64), target=[0, 1], mode=mode,
            return_first_order=True,
        )
    finally:
        handle.remove()
    assert calls["n"] == passes


def test_regions_sum_cell_cross_terms():
    # M over regions a, b is sum_{r in a, s in b} M[r, s] = P^T M P.
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    target = [1, 2]
    cam = TaylorCAM(model, model.act1)
    cells = cam.cross_terms(x, target)
    gen = torch.Generator().manual_seed(5)
    ids = torch.tensor([3, 5, 9, 20])
    regions = ids[torch.randint(0, 4, (2, 8, 8), generator=gen)]  # per-sample maps
    grouped = cam.cross_terms(x, target, regions=regions)
    onehot = (regions.reshape(2, 64, 1) == ids.view(1, 1, 4)).double()  # (B, cells, R)
    expected = onehot.transpose(1, 2) @ cells @ onehot
    torch.testing.assert_close(grouped, expected, rtol=1e-9, atol=1e-12)


def test_regions_at_input_resolution_majority_vote():
    # act2 has a 4x4 grid over the 8x8 input: each cell covers a 2x2 pixel block.
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    cam = TaylorCAM(model, model.act2)
    grid_map = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 7, 7], [2, 2, 7, 7]])
    on_grid = cam.cross_terms(x, [0, 1], regions=grid_map)
    pixels = grid_map.repeat_interleave(2, 0).repeat_interleave(2, 1)
    # One pixel of each block relabelled: the 3-of-4 majority keeps the cell's id.
    pixels[0, 0] = 7
    pixels[5, 7] = 0
    on_input = cam.cross_terms(x, [0, 1], regions=pixels.view(1, 1, 8, 8))
    torch.testing.assert_close(on_input, on_grid, rtol=0, atol=0)


def test_region_without_cells_warns_and_is_zero():
    model = small_cnn()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    pixels = torch.zeros(8, 8, dtype=torch.long)
    pixels[3, 3] = 4  # one pixel of a 2x2 cell: never a majority
    with pytest.warns(UserWarning, match="own no cell"):
        cross = TaylorCAM(model, model.act2).cross_terms(x, 0, regions=pixels)
    assert cross.shape == (1, 2, 2)
    assert float(cross[0, 1].abs().max()) == 0.0 and float(cross[0, :, 1].abs().max()) == 0.0
    assert float(cross[0, 0, 0].abs()) > 0.0


# --------------------------------------------------------------------------- first order


def test_first_order_equals_layer_grad_cam_small_cnn():
    model = small_cnn()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    for layer in (model.conv2, model.act1):
        for to_input in (False, True):
            _, cam = TaylorCAM(model, layer).attribute(
                x, target=[2, 0, 1], return_first_order=True,
                attribute_to_layer_input=to_input,
            )
            ref = LayerGradCam(model, layer).attribute(
                x, target=[2, 0, 1], attribute_to_layer_input=to_input
            )
            torch.testing.assert_close(cam, ref, rtol=1e-12, atol=1e-14)
    _, cam = TaylorCAM(model, model.conv2).attribute(
        x, target=1, return_first_order=True, relu_attributions=True
    )
    ref = LayerGradCam(model, model.conv2).attribute(x, target=1, relu_attributions=True)
    torch.testing.assert_close(cam, ref, rtol=1e-12, atol=1e-14)


def test_first_order_objective_log_softmax():
    # Grad-CAM of the log-softmax equals LayerGradCam of a model whose output
    # is the log-softmax.
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    _, cam = TaylorCAM(model, model.conv2).attribute(
        x, target=[1, 2], return_first_order=True, first_order_objective="log_softmax"
    )
    ref = LayerGradCam(lambda t: torch.log_softmax(model(t), dim=1), model.conv2).attribute(
        x, target=[1, 2]
    )
    torch.testing.assert_close(cam, ref, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- resnet18


def _double_backward_cross_terms(tail, acts: Tensor, target, columns) -> Tensor:
    """Oracle: columns ``s`` of M, each H 1_s by reverse-over-reverse on an
    explicit tail of the network."""
    a = acts.clone().requires_grad_(True)
    score = torch.log_softmax(tail(a), dim=1)[torch.arange(a.shape[0]), target].sum()
    (grad,) = torch.autograd.grad(score, a, create_graph=True)
    cols = []
    for s in columns:
        ind = torch.zeros_like(a).flatten(2)
        ind[:, :, s] = 1.0
        (hv,) = torch.autograd.grad(grad, a, ind.view_as(a), retain_graph=True)
        cols.append((acts * hv).flatten(2).sum(1))  # (B, cells): rows r
    return torch.stack(cols, dim=2).detach()


@pytest.mark.parametrize("name", ["layer4", "layer3"])
def test_resnet18_layers(resnet, name):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    target = [7, 500]
    layer = getattr(resnet, name)
    before = snapshot_model(resnet)
    pairs, cam = TaylorCAM(resnet, layer).attribute(x, target=target, return_first_order=True)
    grid = 2 if name == "layer4" else 4
    assert pairs.shape == (2, grid**2, grid**2) and cam.shape == (2, 1, grid, grid)
    torch.testing.assert_close(pairs, pairs.transpose(1, 2), rtol=0, atol=0)
    assert bool((pairs >= 0).all()) and float(pairs.diagonal(dim1=1, dim2=2).abs().max()) == 0
    assert float(pairs.max()) > 0
    ref = LayerGradCam(resnet, layer).attribute(x, target=target)
    torch.testing.assert_close(cam, ref, rtol=1e-5, atol=1e-7)

    def tail(a: Tensor) -> Tensor:
        if name == "layer3":
            a = resnet.layer4(a)
        return resnet.fc(torch.flatten(resnet.avgpool(a), 1))

    with torch.no_grad():
        h = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        h = resnet.layer3(resnet.layer2(resnet.layer1(h)))
        acts = h if name == "layer3" else resnet.layer4(h)
    columns = [0, 3] if name == "layer4" else [0, 6, 15]
    expected = _double_backward_cross_terms(tail, acts, target, columns)
    cross = TaylorCAM(resnet, layer).cross_terms(x, target=target)[:, :, columns]
    scale = float(expected.abs().max())
    torch.testing.assert_close(cross, expected, rtol=1e-4, atol=1e-5 * scale)
    if name == "layer4":  # batched equals one sample at a time
        single = TaylorCAM(resnet, layer).attribute(x[1:2], target=target[1])
        torch.testing.assert_close(single, pairs[1:2], rtol=1e-4, atol=1e-6 * float(pairs.max()))
    assert before.keys() == snapshot_model(resnet).keys()
    assert _all_hooks_empty(resnet)


def test_resnet18_regions_on_input_image(resnet):
    x = torch.randn(2, 3, 64, 64)
    halves = (torch.arange(64).view(1, 64) >= 32).long().expand(64, 64)  # left / right
    cam = TaylorCAM(resnet, resnet.layer3)
    grouped = cam.cross_terms(x, target=[1, 2], regions=halves)
    cells = cam.cross_terms(x, target=[1, 2])  # 4x4 grid, columns 0-1 left
    right = (torch.arange(16) % 4 >= 2).float()
    onehot = torch.stack([1 - right, right], dim=1)
    expected = onehot.T @ cells @ onehot
    torch.testing.assert_close(grouped, expected, rtol=1e-4, atol=1e-6 * float(cells.abs().max()))


# --------------------------------------------------------------------------- hooks and errors


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    "fail_on_call,grad_enabled,mode",
    [(1, True, "auto"), (1, False, "auto"), (2, True, "fwd_rev"), (2, False, "fwd_rev")],
)
def test_hooks_removed_after_exception_in_forward(resnet, fail_on_call, grad_enabled, mode):
    # Call 1 is the recording pass (the only one on the default recorded-tail
    # path), call 2 the batched HVP pass through the whole network (fwd_rev).
    calls = {"n": 0}

    def explode(module, inp, out):
        calls["n"] += 1
        if calls["n"] >= fail_on_call:
            raise Boom("raised inside forward")

    handle = resnet.fc.register_forward_hook(explode)
    try:
        with torch.set_grad_enabled(grad_enabled):
            with pytest.raises(Boom):
                TaylorCAM(resnet, resnet.layer4).attribute(
                    torch.randn(2, 3, 32, 32), target=[0, 1], attribute_to_layer_input=True,
                    mode=mode,
                )
            assert torch.is_grad_enabled() == grad_enabled  # grad mode restored
        assert calls["n"] >= fail_on_call
        assert list(resnet.fc._forward_hooks) == [handle.id]
    finally:
        handle.remove()
    assert _all_hooks_empty(resnet)


def test_errors():
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="ran 2 times"):
        shared = nn.Sequential(model.act1, model.act1)
        TaylorCAM(shared, model.act1).attribute(x)
    with pytest.raises(ValueError, match="never ran"):
        TaylorCAM(model, nn.Conv2d(1, 1, 1)).attribute(x, target=0)
    with pytest.raises(ValueError, match="spatial dims"):
        TaylorCAM(model, model.fc).attribute(x, target=0)
    cam = TaylorCAM(model, model.act2)
    with pytest.raises(ValueError, match="neither the layer grid"):
        cam.attribute(x, target=0, regions=torch.zeros(5, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer region ids"):
        cam.attribute(x, target=0, regions=torch.zeros(4, 4))
    with pytest.raises(ValueError, match="regions"):
        TaylorCAM(model, model.act1).attribute(x, target=0, max_regions=10)
    with pytest.raises(ValueError, match="out of range"):
        cam.attribute(x, target=3)
    with pytest.raises(ValueError, match="objective"):
        cam.attribute(x, target=0, objective="logit")
    with pytest.raises(ValueError, match="model.module"):
        TaylorCAM(model, model.act2, device_ids=[0]).attribute(x, target=0)
    with pytest.raises(TypeError, match="nn.Module"):
        TaylorCAM(model, "act2")
    assert _all_hooks_empty(model)


def test_zero_hessian_warning_for_linear_tail(resnet):
    # Above layer4 sit average pooling and a linear layer: the logit's Hessian
    # with respect to layer4's activation is exactly zero.
    with pytest.warns(ZeroHessianWarning):
        pairs = TaylorCAM(resnet, resnet.layer4).attribute(
            torch.randn(1, 3, 32, 32), target=0, objective="output"
        )
    assert float(pairs.abs().max()) == 0.0


def test_target_none_uses_predicted_class():
    model = small_cnn()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    cam = TaylorCAM(model, model.conv2)
    predicted = model(x).argmax(1).tolist()
    torch.testing.assert_close(cam.attribute(x), cam.attribute(x, target=predicted))


# --------------------------------------------------------------------------- drawing helpers


def test_top_region_pairs_and_centers():
    scores = torch.zeros(2, 4, 4)
    for b, (i, j, v) in enumerate([(0, 3, 2.0), (1, 2, 5.0)]):
        scores[b, i, j] = scores[b, j, i] = v
    scores[:, 0, 1] = scores[:, 1, 0] = 1.0
    top = top_region_pairs(scores, k=2)
    assert top.index.tolist() == [[[0, 3], [0, 1]], [[1, 2], [0, 1]]]
    torch.testing.assert_close(top.score, torch.tensor([[2.0, 1.0], [5.0, 1.0]]))
    # 2x2 grid over 64x32 pixels: cell (i, j) centered at (16 + 32 i, 8 + 16 j).
    centers = pair_centers(top.index, (2, 2), (64, 32))
    assert centers.shape == (2, 2, 2, 2)
    assert centers[0, 0].tolist() == [[16.0, 8.0], [48.0, 24.0]]
    assert centers[1, 0].tolist() == [[16.0, 24.0], [48.0, 8.0]]
    with pytest.raises(ValueError, match="k must be"):
        top_region_pairs(scores, k=7)


def test_pair_centers_with_regions():
    pixels = torch.zeros(4, 4, dtype=torch.long)
    pixels[:, 3] = 9  # the right-most pixel column
    centers = pair_centers(torch.tensor([[0, 1]]), (2, 2), (4, 4), regions=pixels)
    # Region 0: columns 0-2, centroid col 1.5; region 9: col 3.5; rows 2.0.
    assert centers.tolist() == [[[2.0, 1.5], [2.0, 3.5]]]
    grid_map = torch.tensor([[0, 1], [1, 1]])
    centers = pair_centers(torch.tensor([[0, 1]]), (2, 2), (4, 4), regions=grid_map)
    assert centers[0, 0].tolist() == [1.0, 1.0]
    torch.testing.assert_close(centers[0, 1], torch.tensor([7 / 3, 7 / 3], dtype=torch.float64))
