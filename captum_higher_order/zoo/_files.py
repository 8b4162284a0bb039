"""Where the zoo's committed files live, and how a model gets its weights."""

from __future__ import annotations

import json
import os
from typing import Dict, TypeVar, Union

import torch
from torch import nn

ZOO_DIR = os.path.dirname(os.path.abspath(__file__))

ModelT = TypeVar("ModelT", bound=nn.Module)


def load_committed(
    model: ModelT, weights: str, pretrained: bool, device: Union[str, torch.device, None]
) -> ModelT:
    """``model`` with the committed state dict at ``weights`` (if ``pretrained``),
    on ``device`` (CPU by default) and in eval mode."""
    if pretrained:
        if not os.path.exists(weights):
            raise FileNotFoundError(
                f"{weights} is missing; run `python -m captum_higher_order.zoo.train`."
            )
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.to(device or "cpu").eval()  # in place: returns the same object
    return model


def read_json(path: str) -> Dict[str, object]:
    with open(path) as f:
        return json.load(f)
