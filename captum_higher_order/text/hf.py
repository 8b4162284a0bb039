"""Hugging Face ``transformers`` models as Captum forward functions.

A ``transformers`` model returns a ``ModelOutput``; Captum methods need a tensor
of scores per sample. :class:`HFForward` is that forward, an ``nn.Module`` that
holds the model so the engine checks its attention implementation (see
``captum_higher_order/hessian/attention.py``): with ``attn_implementation="sdpa"``
(the default of recent releases) every second-order pass runs attention on
PyTorch's math kernel; ``flash_attention_2`` is refused.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["HFForward", "last_positions"]


def last_positions(attention_mask: Tensor) -> Tensor:
    """Index of the last real (mask 1) position of every row, for left or
    right padding: ``(B,)``."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.long() * (positions + 1)).argmax(1)


class HFForward(nn.Module):
    """``forward(input_ids, attention_mask=None) -> (B, C)`` scores of a
    Hugging Face model.

    Sequence classifiers give their logits. Language models (logits
    ``(B, T, V)``) give the next-token logits at the last real position of
    each row (``position="last"``, found from the attention mask so left and
    right padding both work), or at a fixed index.

    Args:
        model (nn.Module): A ``transformers`` model (e.g.
            ``BertForSequenceClassification``, ``GPT2LMHeadModel``,
            ``LlamaForCausalLM``), in eval mode.
        position (str or int, optional): ``"last"`` or a token index for
            language models; ignored for 2-D logits. Default: ``"last"``

    Examples::

        >>> import torch
        >>> from captum_higher_order.text import HFForward
        >>> class Toy(torch.nn.Module):  # stands in for a transformers model
        ...     def forward(self, input_ids, attention_mask=None):
        ...         return {"logits": torch.nn.functional.one_hot(input_ids, 5).double()}
        >>> ids = torch.tensor([[1, 2, 0], [3, 4, 2]])
        >>> HFForward(Toy())(ids, torch.tensor([[1, 1, 0], [1, 1, 1]])).argmax(1)
        tensor([2, 2])
    """

    def __init__(self, model: nn.Module, position: object = "last") -> None:
        super().__init__()
        if position != "last" and not isinstance(position, int):
            raise TypeError("`position` must be 'last' or an int token index.")
        self.model = model
        self.position = position
        self.training = False  # this wrapper only

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = out["logits"] if isinstance(out, dict) or hasattr(out, "keys") else out[0]
        if logits.dim() == 2:
            return logits
        if isinstance(self.position, int):
            return logits[:, self.position]
        if attention_mask is None:
            return logits[:, -1]
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, last_positions(attention_mask)]
