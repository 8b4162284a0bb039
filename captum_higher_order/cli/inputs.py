"""What ``captum-ho explain`` feeds the model: an image or tensor file read into a
batch, and the pixel groupings (blocks, grids) that pairwise methods use."""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order.cli.common import CLIError, one_line

__all__ = ["IMAGE_SUFFIXES", "TENSOR_SUFFIXES", "load_input", "block_mask", "grid_mask",
           "layer_grid"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TENSOR_SUFFIXES = (".pt", ".pth", ".npy")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _read_image(path: str, size: Optional[int], normalize: str,
                grayscale: bool) -> Tuple[Tensor, Tensor]:
    import numpy as np
    from PIL import Image

    try:
        img = Image.open(path).convert("L" if grayscale else "RGB")
    except Exception as err:
        raise CLIError(f"cannot read image {path}: {one_line(err)}") from None
    if size:
        img = img.resize((size, size))
    arr = torch.from_numpy(np.asarray(img, dtype="float32") / 255.0)
    x = arr.unsqueeze(0) if arr.dim() == 2 else arr.permute(2, 0, 1)
    display = x.clone()
    if normalize == "imagenet":
        if x.shape[0] != 3:
            raise CLIError("--normalize imagenet needs an RGB image (drop --grayscale).")
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        x = (x - mean) / std
    return x.unsqueeze(0), display.unsqueeze(0)


def _read_tensor(path: str, suffix: str, batched: bool) -> Tuple[Tensor, Optional[Tensor]]:
    try:
        if suffix == ".npy":
            import numpy as np

            x = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            x = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CLIError(f"cannot read tensor {path}: {one_line(err)}") from None
    if not isinstance(x, Tensor):
        raise CLIError(f"{path} holds {type(x).__name__}, not a tensor.")
    if not x.is_floating_point():
        raise CLIError(
            f"{path} holds an integer tensor ({x.dtype}); attribution needs float inputs "
            "(for token ids, explain the embedding output instead)."
        )
    x = x.float()
    if not batched:
        x = x.unsqueeze(0)
    display = x.clone() if x.dim() == 4 and x.shape[1] in (1, 3) else None
    return x, display


def load_input(path: str, batched: bool, size: Optional[int], normalize: str,
               grayscale: bool, device: torch.device) -> Tuple[Tensor, Optional[Tensor]]:
    """An image (PIL) or a ``.pt`` / ``.npy`` tensor -> (model input, display image)."""
    if not os.path.exists(path):
        raise CLIError(f"input file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    display: Optional[Tensor]
    if suffix in IMAGE_SUFFIXES:
        x, display = _read_image(path, size, normalize, grayscale)
    elif suffix in TENSOR_SUFFIXES:
        x, display = _read_tensor(path, suffix, batched)
    else:
        raise CLIError(
            f"unsupported input type {suffix or '(none)'}: use an image "
            f"({', '.join(IMAGE_SUFFIXES)}) or a tensor ({', '.join(TENSOR_SUFFIXES)})."
        )
    if x.dim() < 2 or x.shape[0] == 0:
        raise CLIError(f"the input has shape {tuple(x.shape)}; expected a batch (B, ...).")
    return x.to(device), display


def block_mask(height: int, width: int, block: int) -> Tensor:
    """``(1, 1, H, W)`` group ids of ``block x block`` pixel squares, row-major."""
    rows = torch.arange(height) // block
    cols = torch.arange(width) // block
    per_row = (width + block - 1) // block
    return (rows.view(-1, 1) * per_row + cols.view(1, -1)).view(1, 1, height, width)


def grid_mask(height: int, width: int, cells: int) -> Tensor:
    """``(1, 1, H, W)`` group ids of a ``cells x cells`` grid of superpixels."""
    rows = torch.arange(height) * cells // height
    cols = torch.arange(width) * cells // width
    return (rows.view(-1, 1) * cells + cols.view(1, -1)).view(1, 1, height, width)


def layer_grid(model: nn.Module, layer: nn.Module, inputs: Tensor) -> Tuple[int, ...]:
    """Spatial size of ``layer``'s output for ``inputs`` (one forward with a hook)."""
    shape: List[Tuple[int, ...]] = []

    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
        shape.append(tuple(out.shape[2:]))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        handle.remove()
    return shape[0]
