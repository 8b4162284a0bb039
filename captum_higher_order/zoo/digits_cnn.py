"""A tiny ReLU CNN for scikit-learn's bundled 8x8 digits.

The network is a plain ``nn.Sequential`` of convolutions, ReLUs and one linear
layer (no pooling, no batch-norm), so every method of the package applies to
it: TaylorCAM at ``conv2`` (a 4x4 grid of cells), DTDRootCheck (Linear/Conv +
ReLU only), and the CASO / SmoothHess family on the ``(1, 8, 8)`` input.

Pixels are scaled to ``[0, 1]`` (scikit-learn's digits are integers 0..16).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order.zoo._files import ZOO_DIR, load_committed, read_json

DIGITS_WEIGHTS = os.path.join(ZOO_DIR, "digits_cnn.pt")
DIGITS_META = os.path.join(ZOO_DIR, "digits_cnn.json")
DIGITS_SAMPLES = os.path.join(ZOO_DIR, "digits_samples.json")

#: Seed of the train/test split of scikit-learn's digits used by the zoo.
SPLIT_SEED = 0
#: Fraction of the 1797 digits held out for testing.
TEST_FRACTION = 0.25


class DigitsCNN(nn.Sequential):
    """``conv1 (1->8, 3x3) - ReLU - conv2 (8->16, 3x3, stride 2) - ReLU - fc (256->10)``.

    About 3.8k parameters. Input ``(B, 1, 8, 8)`` in ``[0, 1]``; output ``(B, 10)``
    logits. ``conv2``'s output is a ``(16, 4, 4)`` activation: the layer to give
    TaylorCAM / Grad-CAM.
    """

    def __init__(self) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(1, 8, kernel_size=3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1)),
                    ("relu2", nn.ReLU()),
                    ("flatten", nn.Flatten()),
                    ("fc", nn.Linear(16 * 4 * 4, 10)),
                ]
            )
        )


def load_digits_cnn(
    pretrained: bool = True, device: Union[str, torch.device, None] = None
) -> DigitsCNN:
    """The embedded digits CNN, in eval mode.

    Args:
        pretrained (bool, optional): Load the committed weights
            (``zoo/digits_cnn.pt``, produced by ``python -m
            captum_higher_order.zoo.train``). Default: True
        device (str or torch.device, optional): Where to put the model.
            Default: None (CPU)

    Returns:
        DigitsCNN: the model, ``eval()``, float32.

    Examples::

        >>> from captum_higher_order.zoo import load_digits_cnn, digits_samples
        >>> model = load_digits_cnn()
        >>> images, labels = digits_samples()
        >>> model(images[:4]).argmax(1).tolist() == labels[:4].tolist()
        True
    """
    model = DigitsCNN()
    return load_committed(model, DIGITS_WEIGHTS, pretrained, device)


def digits_metadata() -> Dict[str, object]:
    """Training settings and test accuracy recorded when the weights were made."""
    return read_json(DIGITS_META)


def digits_samples(
    device: Union[str, torch.device, None] = None,
) -> Tuple[Tensor, Tensor]:
    """A few held-out digits shipped with the package (no scikit-learn needed).

    Returns:
        tuple[Tensor, Tensor]: images ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` and
        labels ``(N,)`` int64, taken from the zoo's test split.
    """
    with open(DIGITS_SAMPLES) as f:
        data = json.load(f)
    images = torch.tensor(data["images"], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.tensor(data["labels"], dtype=torch.long)
    return images.to(device or "cpu"), labels.to(device or "cpu")


def digits_split() -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of scikit-learn's digits, as the zoo was trained.

    Needs scikit-learn (a ``dev`` extra). Images are ``(N, 1, 8, 8)`` float32 in ``[0, 1]``.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - sklearn is a dev extra
        raise ImportError(
            "load_digits_data needs scikit-learn (`pip install scikit-learn`); "
            "digits_samples() works without it."
        ) from err
    bunch = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        bunch.images,
        bunch.target,
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=bunch.target,
    )

    def images(x: object) -> Tensor:
        return torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0

    def targets(y: object) -> Tensor:
        return torch.tensor(y, dtype=torch.long)

    return images(x_tr), targets(y_tr), images(x_te), targets(y_te)


def load_digits_data(
    split: Optional[str] = None,
) -> Union[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """scikit-learn's digits as tensors, split exactly as the zoo was trained.

    Needs scikit-learn (a ``dev`` extra).

    Args:
        split (str, optional): ``"train"`` or ``"test"`` for ``(images, labels)``
            of that part, or None for ``(x_train, y_train, x_test, y_test)``.
            Default: None

    Returns:
        tuple[Tensor, ...]: Images ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` and int64 labels.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}.")
    x_tr, y_tr, x_te, y_te = digits_split()
    if split == "train":
        return x_tr, y_tr
    if split == "test":
        return x_te, y_te
    return x_tr, y_tr, x_te, y_te
