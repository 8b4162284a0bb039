# ruff: noqa: E501  (markdown cells keep their natural line length)
"""Write the tutorial notebooks from the cells below (reviewable as plain Python).

``python tutorials/make_notebooks.py`` (``make notebooks``) builds every notebook from
these cells, executes it top to bottom at full size and stores it with its outputs
and figures; ``--no-execute`` writes the cells only, and naming notebooks
(``... taylor_cam.ipynb``) redoes just those. ``tests/test_tutorials.py`` checks
that the committed notebooks have the cells written here and stored outputs with an
Integrated Gradients figure, and executes every notebook again in smoke mode
(``CAPTUM_HO_SMOKE=1``, smaller sample counts).

Every notebook uses only data and models that ship with the package or
scikit-learn (the embedded digits CNN and planted-interaction MLP of
:mod:`captum_higher_order.zoo`), so it runs offline.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, List, Tuple

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

Cell = Tuple[str, str]  # ("md" | "code", source)

SETUP = r'''import os
import warnings

import matplotlib.pyplot as plt
import torch

# CAPTUM_HO_SMOKE=1 (set by the test suite) shrinks sample counts so the notebook runs in
# seconds; unset it for the full-size run.
SMOKE = os.environ.get("CAPTUM_HO_SMOKE", "0") not in ("", "0")
torch.manual_seed(0)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message="IProgress not found")'''


# --------------------------------------------------------------------------- 1. CASO

CASO: List[Cell] = [
    ("md", r'''# Second-order saliency and group features (CASO)

Singla, Wallace, Feng & Feizi, *Understanding Impacts of High-Order Loss Approximations and
Features in Deep Learning Interpretation*, ICML 2019.

A gradient map answers "which pixels change the loss most, to first order?". CASO
(Confident-Aware Second-Order saliency) keeps the second-order term of the loss
$\ell$ (cross-entropy of the explained class) and asks for the perturbation that increases it
most under a ridge and, optionally, a sparsity penalty:

$$d^* = \arg\min_d\; -g^\top d - \tfrac12 d^\top H d + \lambda_1 \lVert d\rVert_1 + \tfrac{\lambda_2}{2}\lVert d\rVert^2,$$

with $g = \nabla_x \ell$ and $H = \nabla^2_x \ell$.

* `SecondOrderSaliency` drops the $\ell_1$ term: $d^* = (\lambda_2 I - H)^{-1} g$, solved by
  conjugate gradients on batched Hessian-vector products.
* `GroupSparseSaliency` keeps it (FISTA); by default $\lambda_1$ is searched so that 75-100% of
  the map is exactly zero, and a `feature_mask` turns the $\ell_1$ norm into a group lasso that
  selects whole superpixels.

We use the small CNN for scikit-learn's 8x8 digits that ships with the package.'''),
    ("code", SETUP + r'''

from captum_higher_order.analysis import caso_display_map, hessian_spectrum
from captum_higher_order.attr.group_sparse_saliency import GroupSparseSaliency
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from captum_higher_order.visualization import visualize_side_by_side_grid
from captum_higher_order.zoo import digits_metadata, digits_samples, load_digits_cnn

model = load_digits_cnn()
images, labels = digits_samples()          # 20 held-out digits, (20, 1, 8, 8) in [0, 1]
print("test accuracy of the embedded CNN:", digits_metadata()["test_accuracy"])'''),
    ("md", r'''## Second-order maps for a few digits

`target=None` explains the predicted class. `second_order=False` gives the first-order map
$g / \lambda_2$ (the paper's CAFO) for comparison; `last_info` reports the top Hessian
eigenvalue (Lanczos), the effective ridge and the CG residual.'''),
    ("code", r'''x = images[[0, 6, 11, 17]]
with torch.no_grad():
    probs = torch.softmax(model(x), dim=1)
confidence, pred = probs.max(dim=1)

caso = SecondOrderSaliency(model)
d_second = caso.attribute(x)
print("lambda_max(H):", caso.last_info.lambda_max)
print("CG residual:  ", caso.last_info.residual)
d_first = caso.attribute(x, second_order=False)

cos = torch.nn.functional.cosine_similarity(d_second.flatten(1), d_first.flatten(1))
for p, c, s in zip(pred.tolist(), confidence.tolist(), cos.tolist()):
    print(f"predicted {p} with confidence {c:.3f}: cos(second-order map, gradient) = {s:.3f}")'''),
    ("md", r'''The least confident digit (a 5 the network reads as a 3) is the one whose second-order map
differs most from the gradient. Now the sparse maps: plain $\ell_1$, and a group lasso over
2x2 pixel blocks (a `feature_mask` with 16 ids).'''),
    ("code", r'''sparse = GroupSparseSaliency(model)
d_l1 = sparse.attribute(x)
print("lambda1 found:", sparse.last_info.lambda1)
print("sparsity:     ", sparse.last_info.sparsity)

blocks = ((torch.arange(8) // 2).view(8, 1) * 4 + torch.arange(8) // 2).view(1, 1, 8, 8)
d_group = sparse.attribute(x, feature_mask=blocks)
# a group is selected as a whole: every 2x2 block is all zero or has no zero at all
nonzero_per_block = torch.stack(
    [(d_group[:, 0][:, blocks[0, 0] == b] != 0).sum(1) for b in range(16)], dim=1)
print("nonzero pixels per block (0 or 4):", nonzero_per_block.unique().tolist())'''),
    ("md", r'''## Beside Integrated Gradients

Captum's `IntegratedGradients` (black baseline) in the first column, then the first-order map,
the second-order map and the two sparse maps. Rows name the true label and the prediction.'''),
    ("code", r'''from captum.attr import IntegratedGradients

ig = IntegratedGradients(model).attribute(x, target=pred, n_steps=64)
fig, axes = visualize_side_by_side_grid(
    x,
    {"Integrated Gradients": ig, "gradient (CAFO)": d_first, "SecondOrderSaliency": d_second,
     "GroupSparse (L1)": d_l1, "GroupSparse (2x2 groups)": d_group},
    labels=labels[[0, 6, 11, 17]].tolist(), predictions=pred.tolist(),
    probabilities=confidence.tolist(),
)'''),
    ("md", r'''What the second-order view adds: Integrated Gradients and the gradient say which pixels carry
the class score at this input; `SecondOrderSaliency` asks which perturbation raises the loss most
once the curvature of the loss is taken into account. On the confident digits the curvature is
negligible and the map is the gradient up to scale (the cosines printed above); only on the
misread 5 (third row) does it turn away from the gradient, and then only a little. The sparse
maps keep the few pixels or 2x2 blocks that account for most of the loss increase, which is
where the two views differ visibly.'''),
    ("md", r'''The authors display $|d|$ summed over colour channels and clipped at the 99th percentile;
`caso_display_map` returns that map channels-last, ready for Captum's `visualize_image_attr`.'''),
    ("code", r'''from captum.attr import visualization as viz

display = caso_display_map(d_second)
_ = viz.visualize_image_attr(display[2].numpy(), method="heat_map", sign="positive",
                             outlier_perc=0, title="CASO display map, low-confidence digit",
                             fig_size=(3, 3))'''),
    ("md", r'''## When does the Hessian matter? Confidence vs alignment

For a piecewise-linear network the cross-entropy Hessian is
$H = J^\top(\mathrm{diag}(p) - pp^\top)J$ (Singla et al.). Two consequences:

* as the confidence $p_y \to 1$, $\mathrm{diag}(p) - pp^\top \to 0$: the curvature vanishes, the ridge
  $\lambda_2$ dominates and the CASO map is the gradient up to scale;
* where $H$ is not negligible it is close to rank one with its top eigenvector $v_1$ nearly
  parallel to $g$, so even then the map turns away from $g$ only a little.

`hessian_spectrum` reports per sample the confidence, the top eigenvalues and $|\cos(v_1, g)|$.
We perturb test digits with noise so that the confidences spread out.'''),
    ("code", r'''n = 20 if SMOKE else 200
try:
    from captum_higher_order.zoo import load_digits_data
    pool, _ = load_digits_data("test")      # needs scikit-learn
except ImportError:
    pool = images
gen = torch.Generator().manual_seed(0)
batch = (pool[:n] + 0.35 * torch.randn(pool[:n].shape, generator=gen)).clamp(0, 1)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Lanczos")  # tiny Hessians converge slowly
    report = hessian_spectrum(model, batch, k=3)
    maps = SecondOrderSaliency(model).attribute(batch)
grads = SecondOrderSaliency(model).attribute(batch, second_order=False)
map_cos = torch.nn.functional.cosine_similarity(maps.flatten(1), grads.flatten(1)).abs()
doubt = (1 - report.probability).clamp_min(1e-8)   # 1 - confidence

fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
panels = [(report.eigenvalues[:, 0].clamp_min(1e-12), "top eigenvalue of H", True),
          (report.alignment, "|cos(v1, g)|", False),
          (map_cos, "|cos(CASO map, gradient)|", False)]
for ax, (values, name, log_y) in zip(axes, panels):
    ax.scatter(doubt, values, s=12)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("1 - confidence")
    ax.set_ylabel(name)
fig.tight_layout()
plt.show()
for lo, hi in [(0.0, 0.9), (0.9, 0.99), (0.99, 1.01)]:
    sel = (report.probability >= lo) & (report.probability < hi)
    if sel.any():
        print(f"confidence in [{lo}, {min(hi, 1)}): {int(sel.sum()):3d} samples, median "
              f"|cos(map, g)| = {map_cos[sel].median():.4f}, "
              f"{float((map_cos[sel] < 0.99).float().mean()):.0%} below 0.99")'''),
    ("md", r'''The top eigenvalue falls by orders of magnitude as the confidence approaches one, and the
share of second-order maps that turn away from the gradient grows as the confidence drops: the
Hessian term is worth its cost on the inputs the model is unsure about.'''),
    ("md", r'''## With a network: torchvision models

Nothing here is specific to the digits CNN. With internet access (once; torch caches the
weights), a pretrained ImageNet model works the same way; use a `feature_mask` of superpixels for
the group lasso:

```python
from torchvision.models import resnet18, ResNet18_Weights
weights = ResNet18_Weights.DEFAULT
model = resnet18(weights=weights).eval()
from PIL import Image
pil_image = Image.open("cat.jpg").convert("RGB")         # any photo
x = weights.transforms()(pil_image).unsqueeze(0)
d = SecondOrderSaliency(model).attribute(x)
mask = ((torch.arange(224) // 16).view(-1, 1) * 14 + torch.arange(224) // 16).view(1, 1, 224, 224)
d_group = GroupSparseSaliency(model).attribute(x, feature_mask=mask)
```'''),
]


# --------------------------------------------------------------------------- 2. interactions

INTERACTIONS: List[Cell] = [
    ("md", r'''# Feature interactions: SmoothHess, CrossDerivatives and Integrated Hessians beside Integrated Gradients

First-order methods (Integrated Gradients) give one number per feature. Interaction methods give
one number per *pair* (or set) of features:

| method | what it computes | paper |
|---|---|---|
| `SmoothHess` | Hessian of the model convolved with a Gaussian, from gradient calls only (Stein's lemma); SmoothGrad for free | Torop, Masoomi et al. 2023 |
| `CrossDerivatives` | local mixed partials $\partial^k f / \partial x_{i_1}\cdots\partial x_{i_k}$, pairs and k-way sets, and their mean over data | Lerman et al. 2021 |
| `IntegratedHessians` | path-integrated Hessian; rows sum to IG, all entries to $f(x) - f(x')$ | Janizek et al. 2021 |

Part 1 uses a tabular model with *known* interactions, part 2 the embedded digits CNN.'''),
    ("code", SETUP + r'''

from captum.attr import IntegratedGradients

from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from captum_higher_order.attr.integrated_hessians import IntegratedHessians
from captum_higher_order.attr.smooth_hess import SmoothHess
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.visualization import (
    visualize_image_interactions,
    visualize_interaction_graph,
    visualize_interaction_matrix,
    visualize_top_interactions,
)
from captum_higher_order.zoo import (
    FEATURE_NAMES,
    PLANTED_PAIRS,
    PLANTED_SETS,
    load_planted_mlp,
    planted_metadata,
    sample_inputs,
)'''),
    ("md", r'''## 1. A tabular model with planted interactions

`load_planted_mlp()` is a GELU MLP fitted to
$f(x) = 2x_0x_1 + 1.5x_2x_3x_4 + \sin(\pi x_5) + 0.5x_6$ on $[-1, 1]^8$: the true pairs are
$\{0,1\}, \{2,3\}, \{2,4\}, \{3,4\}$, and $\{2,3,4\}$ is a three-way interaction.'''),
    ("code", r'''mlp = load_planted_mlp()
print(planted_metadata()["function"], "| test R^2:", planted_metadata()["test_r2"])
n = 16 if SMOKE else 256
x = sample_inputs(n, seed=7)

smooth, smoothgrad, stderr = SmoothHess(mlp).attribute(
    x, sigma=0.3, n_samples=128 if SMOKE else 1024, return_gradient=True,
    return_stderr=True, generator=0)
cross = CrossDerivatives(mlp).attribute(x, absolute=False)
ih, delta = IntegratedHessians(mlp).attribute(
    x, n_steps=8 if SMOKE else 32, return_convergence_delta=True)
ig = IntegratedGradients(mlp).attribute(x, n_steps=64)
print("shapes:", smooth.shape, cross.shape, ih.shape, ig.shape)'''),
    ("md", r'''**Integrated Hessians vs Integrated Gradients.** The rows of $\Gamma$ sum to IG, and all entries
to $f(x) - f(0)$ (the convergence delta is the gap).'''),
    ("code", r'''print("max |row sums of IH - IG|:", float((ih.sum(2) - ig).abs().max()))
print("max |completeness gap|:   ", float(delta.abs().max()))'''),
    ("code", r'''i = int((x[:, 0] * x[:, 1]).abs().argmax())   # the input where 2 x0 x1 weighs most
fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.3]})
axes[0].barh(FEATURE_NAMES[::-1], ig[i].flip(0).tolist(),
             color=["#1a9850" if v >= 0 else "#d73027" for v in ig[i].flip(0).tolist()])
axes[0].axvline(0, color="k", lw=0.8)
axes[0].set_xlabel("attribution (green > 0, red < 0)")
axes[0].set_title(f"Integrated Gradients (Captum), input {i}")
visualize_interaction_matrix(ih[i], FEATURE_NAMES, plt_fig_axis=(fig, axes[1]),
                             use_pyplot=False, title=f"Integrated Hessians, input {i}")
fig.tight_layout()
plt.show()
print(f"x0 = {float(x[i, 0]):+.2f}, x1 = {float(x[i, 1]):+.2f}: IG gives x0 {float(ig[i, 0]):+.3f} "
      f"and x1 {float(ig[i, 1]):+.3f}; IH puts {float(ih[i, 0, 1] + ih[i, 1, 0]):+.3f} of it on "
      f"the pair (x0, x1)")'''),
    ("md", r'''What the second-order view adds: IG splits the output among the features but cannot say
*why* x0 and x1 get their credit. Integrated Hessians splits each IG attribution further over
pairs (each row sums to the IG bar on the left): the credit of x0 and x1 sits on the pair
(x0, x1) and on their own diagonal entries, and none of it on pairs with other features. That is
the signature of the product $2x_0x_1$: for a product of two features IH gives half of the
credit to the pair (the number printed above) and a quarter to each diagonal entry.'''),
    ("md", r'''**Do the methods find the planted pairs?** Score each pair by its mean absolute value over the
samples and compute the ROC-AUC against the planted pairs (1.0 = every planted pair ranks above
every other pair).'''),
    ("code", r'''for name, result in [("SmoothHess", smooth), ("CrossDerivatives", cross),
                     ("IntegratedHessians", ih)]:
    auc = interaction_auc(result.abs().mean(0), PLANTED_PAIRS)
    print(f"{name:<20} AUC = {auc:.3f}")'''),
    ("code", r'''fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, (name, result) in zip(axes, [("SmoothHess", smooth), ("CrossDerivatives", cross),
                                     ("IntegratedHessians", ih)]):
    visualize_interaction_matrix(result[0], FEATURE_NAMES, plt_fig_axis=(fig, ax),
                                 use_pyplot=False, title=f"{name}, sample 0")
fig.tight_layout()
plt.show()'''),
    ("md", r'''SmoothHess reports a Monte-Carlo standard error per entry (`return_stderr=True`): draw it as
error bars to see whether `n_samples` was enough. The graph view shows the mean absolute
interactions as edges and the mean |IG| as node sizes.'''),
    ("code", r'''fig, axes = plt.subplots(1, 2, figsize=(12, 4))
visualize_top_interactions(smooth[0], k=6, feature_names=FEATURE_NAMES, errors=stderr[0],
                           sign="all", plt_fig_axis=(fig, axes[0]), use_pyplot=False,
                           title="SmoothHess, sample 0 (+/- 1 s.e.)")
visualize_interaction_graph(ih.abs().mean(0), main_effects=ig.abs().mean(0),
                            feature_names=FEATURE_NAMES, top_n=6, plt_fig_axis=(fig, axes[1]),
                            use_pyplot=False, title="mean |IH| (edges), mean |IG| (nodes)")
plt.show()'''),
    ("md", r'''**Beyond pairs.** `CrossDerivatives(order=3, top_k=...)` ranks three-way sets by
$|\partial^3 f / \partial x_i \partial x_j \partial x_k|$; `global_interactions` averages over a
data set (Lerman et al.'s global interaction).'''),
    ("code", r'''cd = CrossDerivatives(mlp)
top3 = cd.attribute(x[:4], order=3, top_k=2)
print("strongest 3-way sets per sample:", top3.as_lists(FEATURE_NAMES))
glob = cd.global_interactions(x, top_k=5)
print("global pairs:", [(k, round(v, 3)) for k, v in glob.ranking])
print("planted sets:", PLANTED_SETS)'''),
    ("md", r'''## 2. Digits: pixel-block interactions of a ReLU CNN

A ReLU network is piecewise linear, so the exact Hessian of a logit is zero almost everywhere
(the library warns with `ZeroHessianWarning`). Three ways to see curvature anyway:
SmoothHess (Gaussian smoothing), a curved objective (`objective="log_softmax"`), or the
`softplus_surrogate` context manager. With 64 pixels every pair is affordable, but 2x2 blocks
(a `feature_mask` with 16 groups) read better.'''),
    ("code", r'''from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.zoo import digits_samples, load_digits_cnn

cnn = load_digits_cnn()
images, labels = digits_samples()
xd = images[[11, 17]]
blocks = ((torch.arange(8) // 2).view(8, 1) * 4 + torch.arange(8) // 2).view(1, 1, 8, 8)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    CrossDerivatives(cnn).attribute(xd, target=labels[[11, 17]], objective="output")
print([str(w.message)[:90] for w in caught if issubclass(w.category, ZeroHessianWarning)])

pred = cnn(xd).argmax(1)
sh_blocks = SmoothHess(cnn).attribute(xd, target=pred, sigma=0.25, feature_mask=blocks,
                                      n_samples=128 if SMOKE else 2048, generator=0)
ih_blocks = IntegratedHessians(cnn).attribute(xd, target=pred, objective="log_softmax",
                                              feature_mask=blocks, n_steps=8 if SMOKE else 32)
cd_blocks = CrossDerivatives(cnn).attribute(xd, target=pred, objective="log_softmax",
                                            feature_mask=blocks, absolute=False)'''),
    ("code", r'''fig, axes = plt.subplots(2, 3, figsize=(10, 7))
for row in range(2):
    for col, (name, result) in enumerate([("SmoothHess", sh_blocks),
                                          ("IntegratedHessians", ih_blocks),
                                          ("CrossDerivatives", cd_blocks)]):
        visualize_image_interactions(xd[row], result[row], k=4, region_mask=blocks[0, 0],
                                     plt_fig_axis=(fig, axes[row, col]), use_pyplot=False,
                                     title=f"{name}: pred {int(pred[row])}")
fig.tight_layout()
plt.show()'''),
    ("md", r'''Beside Captum's Integrated Gradients of the same predictions: IG shows the pixels that carry
the class score, the block pairs show which of those act *together* (a pair's score is the
curvature of the smoothed model between the two blocks, so a positive pair adds more than the
two blocks do alone). Cells are named `(row, col)` on the 4x4 grid of 2x2 blocks.'''),
    ("code", r'''from captum_higher_order.visualization import visualize_side_by_side_grid

ig_digits = IntegratedGradients(cnn).attribute(xd, target=pred, n_steps=64)
probs = torch.softmax(cnn(xd), 1).max(1).values.detach()
fig, axes = visualize_side_by_side_grid(
    xd, {"Integrated Gradients": ig_digits},
    image_interactions={"SmoothHess pairs": sh_blocks, "IntegratedHessians pairs": ih_blocks},
    grid_shape=(4, 4), k=4, labels=labels[[11, 17]].tolist(), predictions=pred.tolist(),
    probabilities=probs.tolist())'''),
    ("md", r'''## With a network: torchvision models

For an ImageNet model, group pixels into superpixels (here a 14x14 grid of 16x16 patches) so the
result is $196 \times 196$ instead of $150528 \times 150528$:

```python
from torchvision.models import resnet18, ResNet18_Weights
weights = ResNet18_Weights.DEFAULT
model = resnet18(weights=weights).eval()
from PIL import Image
pil_image = Image.open("cat.jpg").convert("RGB")         # any photo
x = weights.transforms()(pil_image).unsqueeze(0)
mask = ((torch.arange(224) // 16).view(-1, 1) * 14 + torch.arange(224) // 16).view(1, 1, 224, 224)
h = SmoothHess(model).attribute(x, sigma=0.1, feature_mask=mask, n_samples=512, generator=0)
visualize_image_interactions(weights.transforms()(pil_image), h[0], k=5, region_mask=mask[0, 0])
```'''),
]


# --------------------------------------------------------------------------- 3. TaylorCAM

TAYLOR_CAM: List[Cell] = [
    ("md", r'''# TaylorCAM: which regions act together

Lerman, Venuto, Bhatt, Goldstein, *Explaining Local, Global, and Higher-Order Interactions in Deep
Learning*, ICCV 2021.

Grad-CAM weights the cells of a convolutional layer by the gradient of the class score: a
first-order Taylor term. TaylorCAM keeps the second-order term. With activation $A[k, r]$
(channel $k$, cell $r$), target score $y$ (the log-softmax of the class) and
$M[r, s] = \sum_k A[k, r] \sum_l \partial^2 y / \partial A[k, r]\,\partial A[l, s]$, the pair score is
$P[r, s] = M[r, s]^2 + M[s, r]^2$: large when the two regions matter *together*. All cells' Hessian
products come from one batched HVP call.'''),
    ("code", SETUP + r'''

from captum.attr import LayerGradCam

from captum_higher_order.attr.taylor_cam import TaylorCAM, top_region_pairs
from captum_higher_order.visualization import (
    visualize_image_interactions,
    visualize_interaction_matrix,
)
from captum_higher_order.zoo import digits_samples, load_digits_cnn

model = load_digits_cnn()        # conv1 -> ReLU -> conv2 (stride 2) -> ReLU -> fc
images, labels = digits_samples()
x = images if not SMOKE else images[::2]
y = labels if not SMOKE else labels[::2]'''),
    ("md", r'''The explained layer is `conv2`, whose output is a 4x4 grid: 16 cells, 120 pairs. With
`return_first_order=True` TaylorCAM also returns the Grad-CAM map, equal to Captum's
`LayerGradCam`.'''),
    ("code", r'''cam = TaylorCAM(model, model.conv2)
pairs, grad_cam = cam.attribute(x, target=y, return_first_order=True)
print("pair scores:", tuple(pairs.shape), " Grad-CAM:", tuple(grad_cam.shape))
reference = LayerGradCam(model, model.conv2).attribute(x, target=y)
print("equals Captum's LayerGradCam:", torch.allclose(grad_cam, reference, atol=1e-5))
top = top_region_pairs(pairs, k=3)
print("strongest cell pairs of the first digit:", top.index[0].tolist())'''),
    ("code", r'''show = min(6, len(x))
fig, axes = plt.subplots(2, show, figsize=(2.2 * show, 4.6))
upsampled = torch.nn.functional.interpolate(grad_cam, size=(8, 8), mode="nearest")
for i in range(show):
    axes[0, i].imshow(upsampled[i, 0], cmap="RdBu_r")
    axes[0, i].set_title(f"Grad-CAM, digit {int(y[i])}", fontsize=8)
    axes[0, i].axis("off")
    visualize_image_interactions(x[i], pairs[i], k=3, plt_fig_axis=(fig, axes[1, i]),
                                 use_pyplot=False, title="TaylorCAM top 3 pairs")
fig.tight_layout()
plt.show()'''),
    ("md", r'''## Beside Integrated Gradients

Captum's `IntegratedGradients` on the pixels and `LayerIntegratedGradients` on `conv2` (summed
over channels, one value per cell, shown at pixel resolution) next to the TaylorCAM pairs.'''),
    ("code", r'''from captum.attr import IntegratedGradients, LayerIntegratedGradients
from captum_higher_order.visualization import visualize_side_by_side_grid

sel = [0, 11, 16] if len(x) > 16 else [0, 1, 2]   # a confident 0, a 5 read as a 3, an 8 at p 0.58
xs, ys = x[sel], y[sel]
with torch.no_grad():
    prob = torch.softmax(model(xs), 1)
ig = IntegratedGradients(model).attribute(xs, target=ys, n_steps=64)
layer_ig = LayerIntegratedGradients(model, model.conv2).attribute(xs, target=ys, n_steps=64)
layer_ig = torch.nn.functional.interpolate(layer_ig.sum(1, keepdim=True), size=(8, 8),
                                           mode="nearest")
fig, axes = visualize_side_by_side_grid(
    xs, {"Integrated Gradients": ig, "LayerIG on conv2 cells": layer_ig},
    image_interactions={"TaylorCAM pairs": pairs[sel]}, grid_shape=(4, 4), k=3,
    labels=ys.tolist(), predictions=prob.argmax(1).tolist(),
    probabilities=prob.max(1).values.tolist())'''),
    ("md", r'''What the second-order view adds: LayerIG ranks the cells of `conv2` one at a time; TaylorCAM
says which cells the log-probability depends on *jointly* (the second-order term of its Taylor
expansion in the activations), and that joint dependence is largest where the model is unsure,
so the confident digits may draw no pair at all on the shared scale.'''),
    ("md", r'''The signed cross terms $M$ (before squaring) are available from `cross_terms`; row $r$ is the
activation side, column $s$ the Hessian direction.'''),
    ("code", r'''cross = cam.cross_terms(x[:1], target=y[:1])
cells = [f"({r}, {c})" for r in range(4) for c in range(4)]   # (row, col) of the 4x4 grid
_ = visualize_interaction_matrix(cross[0], cells, zero_diagonal=False,
                                 title="TaylorCAM cross terms M, first digit", fig_size=(5, 5))'''),
    ("md", r'''## Regions instead of cells

`regions` groups cells (given on the layer's grid or at input resolution). Here: the four
quadrants of the digit.'''),
    ("code", r'''quadrants = ((torch.arange(8) // 4).view(8, 1) * 2 + torch.arange(8) // 4)   # (8, 8) ids 0..3
quad_pairs = cam.attribute(x, target=y, regions=quadrants)
print("quadrant pair scores:", tuple(quad_pairs.shape))
names = ["top-left", "top-right", "bottom-left", "bottom-right"]
best = top_region_pairs(quad_pairs, k=1).index[:, 0]
for i in range(min(4, len(x))):
    a, b = best[i].tolist()
    print(f"digit {int(y[i])}: strongest quadrant pair {names[a]} x {names[b]}")
_ = visualize_image_interactions(x[0], quad_pairs[0], k=2, region_mask=quadrants,
                                 title="quadrant pairs, first digit", fig_size=(3, 3))'''),
    ("md", r'''## Confidence and curvature

The log-softmax Hessian shrinks as the prediction becomes certain (the softmax saturates), so pair
scores are largest for the uncertain digits - the same effect that makes second-order saliency
matter most at low confidence.'''),
    ("code", r'''with torch.no_grad():
    confidence = torch.softmax(model(x), 1).max(1).values
total = pairs.sum(dim=(1, 2))
plt.figure(figsize=(4, 3))
plt.scatter(confidence, total)
plt.yscale("log")
plt.xlabel("confidence")
plt.ylabel("sum of pair scores")
plt.show()'''),
    ("md", r'''## With a network: torchvision models

```python
from torchvision.models import resnet18, ResNet18_Weights
weights = ResNet18_Weights.DEFAULT
model = resnet18(weights=weights).eval()
from PIL import Image
pil_image = Image.open("cat.jpg").convert("RGB")         # any photo
x = weights.transforms()(pil_image).unsqueeze(0)
pairs = TaylorCAM(model, model.layer4).attribute(x)          # 7x7 cells -> (1, 49, 49)
visualize_image_interactions(x[0], pairs[0], k=5, grid_shape=(7, 7))
```
The same works from the command line:
`captum-ho explain --model torchvision.models:resnet18 --weights DEFAULT --input cat.jpg
--size 224 --normalize imagenet --method taylor_cam --layer layer4`.'''),
]


# --------------------------------------------------------------------------- 4. DTD

DTD: List[Cell] = [
    ("md", r'''# Is my LRP map a Taylor decomposition? DTDRootCheck

Sixt & Landgraf, *A Rigorous Study of the Deep Taylor Decomposition*, TMLR 2022.

Deep Taylor Decomposition (DTD) justifies LRP rules as first-order Taylor expansions of each
neuron at a *root point* $r_j = a - t\,v_j$. The expansion is exact only if the segment
$[r_j, a]$ stays inside the linear region of the network above the layer (the same ReLU
pattern). `DTDRootCheck` computes the relevance for a rule and checks every root: the
relevance-weighted share of valid roots, domain violations, the Taylor residual, conservation,
how much the roots move with the input, and the distance of the map to gradient x input. It
states **PASS / WARN / FAIL**.'''),
    ("code", SETUP + r'''

from captum.attr import InputXGradient

from captum_higher_order.attr.dtd_root_check import DTDRootCheck
from captum_higher_order.visualization import visualize_side_by_side_grid
from captum_higher_order.zoo import digits_samples, load_digits_cnn

model = load_digits_cnn()       # Conv/ReLU/Linear only: what DTD needs
images, labels = digits_samples()
x, y = images[[0, 6, 11, 17]], labels[[0, 6, 11, 17]]
points = 4 if SMOKE else 16     # points checked on each root's segment'''),
    ("md", r'''## z+ relevance and its report

`attribute` returns the relevance map (Captum-shaped); for z+ it equals Captum's `LRP` with
`Alpha1_Beta0_Rule(set_bias_to_zero=True)`. `check` returns the report.'''),
    ("code", r'''dtd = DTDRootCheck(model, rule="z+")
relevance = dtd.attribute(x, target=y)
report = dtd.check(x, target=y, n_segment_points=points, n_directions=1)
print(report.summary())'''),
    ("md", r'''The roots of the two convolutions almost never lie in the input's linear region, so the
Taylor steps there are not exact and the map is far from gradient x input: **FAIL**, the finding
of Sixt & Landgraf. The top layer (a linear map into the logit) is always fine.

## Rules compared

Every rule chooses a different root direction; none of them is justified for this trained CNN.'''),
    ("code", r'''rows = []
xr, yr = (x[:2], y[:2]) if SMOKE else (x, y)
for rule in ["lrp0", "z+", "w2", "zbox", "gamma"]:
    kwargs = {"low": 0.0, "high": 1.0} if rule == "zbox" else None
    rep = DTDRootCheck(model, rule=rule, rule_kwargs=kwargs).check(
        xr, target=yr, n_segment_points=points, n_directions=1)
    rows.append((rule, rep.overall_verdict, rep.valid_share.nanmean(0).tolist(),
                 float(rep.cosine_gxi.mean())))
print(f"{'rule':<6} {'verdict':<7} {'valid share per layer':<26} cos(map, grad x input)")
for rule, verdict, valid, cos in rows:
    print(f"{rule:<6} {verdict:<7} {', '.join(f'{v:.3f}' for v in valid):<26} {cos:.3f}")'''),
    ("md", r'''## When DTD is a Taylor decomposition

Without biases a ReLU network is positively homogeneous: along the ray from $0$ to $a$ nothing
flips. LRP-0 puts every root at $0$, so all roots are valid and the map equals
gradient x input. Removing the biases from a copy of the CNN shows the check passing.'''),
    ("code", r'''no_bias = load_digits_cnn()
with torch.no_grad():
    for module in no_bias.modules():
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
check = DTDRootCheck(no_bias, rule="lrp0").check(x, target=y, n_segment_points=points,
                                                 n_directions=1)
print("verdicts:", check.verdict, "| equals gradient x input:", check.equals_gxi.tolist())
gxi = InputXGradient(no_bias).attribute(x, target=y)
lrp0 = DTDRootCheck(no_bias, rule="lrp0").attribute(x, target=y)
print("max |LRP-0 - gradient x input|:", float((lrp0 - gxi.detach()).abs().max()))'''),
    ("code", r'''from captum.attr import IntegratedGradients

with torch.no_grad():
    pred = model(x).argmax(1)
ig = IntegratedGradients(model).attribute(x, target=y, n_steps=64)
fig, axes = visualize_side_by_side_grid(
    x,
    {"Integrated Gradients": ig, "DTD z+": relevance,
     "gradient x input": InputXGradient(model).attribute(x, target=y),
     "LRP-0, bias-free copy": lrp0},
    row_labels=[f"label {int(t)}, pred {int(p)}: {v}"
                for t, p, v in zip(y, pred, report.verdict)],
    sign="all",
)'''),
    ("md", r'''Beside Captum's Integrated Gradients: IG satisfies completeness by construction, while the z+
map is justified only if its roots are valid, which the report above says they are not. What the
check adds is not a new map but a test of the map's own story: a FAIL says to read the z+ map as
a heuristic, and to prefer maps like IG whose guarantees hold for this model.'''),
    ("md", r'''## What to do with a FAIL

* Treat the map as a heuristic relevance propagation, not as a Taylor decomposition of the model.
* Compare it with methods whose guarantees you can test: Integrated Gradients (completeness),
  IntegratedHessians, or the SmoothHess Taylor model (P-MSE).
* Run the cascading randomisation sanity check: a map that barely changes when the top layers are
  re-initialised does not explain the model.

## With a network: torchvision models

`DTDRootCheck` needs a chain of Conv/Linear/ReLU/pooling layers (BatchNorm is folded in), e.g.
VGG:

```python
from torchvision.models import vgg16, VGG16_Weights
from PIL import Image
weights = VGG16_Weights.DEFAULT
model = vgg16(weights=weights).eval()
x = weights.transforms()(Image.open("cat.jpg").convert("RGB")).unsqueeze(0)   # any photo
seq = torch.nn.Sequential(*model.features, model.avgpool, torch.nn.Flatten(), *model.classifier)
print(DTDRootCheck(seq, rule="z+").check(x, n_segment_points=8).summary())
```'''),
]


NOTEBOOKS: Dict[str, Tuple[str, List[Cell]]] = {
    "second_order_saliency.ipynb": ("Second-order saliency and group features", CASO),
    "feature_interactions.ipynb": (
        "Feature interactions: SmoothHess, CrossDerivatives and Integrated Hessians",
        INTERACTIONS,
    ),
    "taylor_cam.ipynb": ("TaylorCAM: which regions act together", TAYLOR_CAM),
    "dtd_root_check.ipynb": ("Is my LRP map a Taylor decomposition? DTDRootCheck", DTD),
}

# Token-pair interactions of transformers (issue 15); cells in their own file.
sys.path.insert(0, HERE)
from token_interactions_cells import TOKEN_INTERACTIONS  # noqa: E402

NOTEBOOKS["token_interactions.ipynb"] = (
    "Token-pair interactions of transformers", TOKEN_INTERACTIONS
)


def build(cells: List[Cell], title: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["title"] = title
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"  # stable ids keep regenerated files identical
        nb.cells.append(cell)
    return nb


def render(name: str) -> str:
    title, cells = NOTEBOOKS[name]
    return nbformat.writes(build(cells, title)) + "\n"


def execute(nb: nbformat.NotebookNode, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom at full size (``CAPTUM_HO_SMOKE`` unset) in a kernel of this
    interpreter that imports the package from this checkout; outputs and figures stay in it."""
    import tempfile

    import nbclient

    env_before = dict(os.environ)
    os.environ.pop("CAPTUM_HO_SMOKE", None)
    os.environ.pop("MPLBACKEND", None)   # the inline backend stores the figures as PNG
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in env_before.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        with tempfile.TemporaryDirectory() as cwd:
            nbclient.NotebookClient(
                nb, timeout=timeout, kernel_name="python3", record_timing=False,
                resources={"metadata": {"path": cwd}},
            ).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return nb


def main(argv: List[str]) -> int:
    """``make_notebooks.py [--no-execute] [OUT_DIR] [NAME ...]``: write (and by default
    execute and store with outputs) the notebooks."""
    args = [a for a in argv[1:] if not a.startswith("--")]
    run = "--no-execute" not in argv
    out_dir = args[0] if args and not args[0].endswith(".ipynb") else HERE
    names = [a for a in args if a.endswith(".ipynb")] or list(NOTEBOOKS)
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        title, cells = NOTEBOOKS[name]
        nb = build(cells, title)
        if run:
            start = time.perf_counter()
            execute(nb)
            print(f"executed {name} in {time.perf_counter() - start:.0f} s")
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(nbformat.writes(nb) + "\n")
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
