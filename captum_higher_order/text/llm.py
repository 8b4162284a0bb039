"""Token-pair interactions of a language model's prompt, Captum's
``LLMGradientAttribution`` style.

The score is the sum of the log-probabilities of the target tokens given the
prompt (teacher forcing: the target is appended to the prompt and the model
runs once). The interaction method varies the embeddings of the prompt tokens
only: the target tokens keep their embeddings at the input and at the baseline,
so their ``Delta`` is zero and they form one extra group that is cropped away.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order.attr.layer import (
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
)
from captum_higher_order.visualization import plot_token_interactions

__all__ = ["LLMInteractionAttribution", "LLMInteractionResult", "TargetLogProb"]

LayerMethod = Union[LayerIntegratedHessians, LayerCrossDerivatives, LayerSmoothHess]


class TargetLogProb(nn.Module):
    """``forward(prompt_ids) -> (B, 1)``: sum of ``log p(target_m | prompt,
    target_<m)`` of a causal LM (logits in its output's ``"logits"``)."""

    target_ids: Tensor

    def __init__(self, model: nn.Module, target_ids: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("target_ids", target_ids.view(1, -1).long(), persistent=False)
        self.training = False  # this wrapper only

    def forward(self, prompt_ids: Tensor) -> Tensor:
        batch, length = prompt_ids.shape
        target = self.target_ids.to(prompt_ids.device).expand(batch, -1)
        out = self.model(input_ids=torch.cat([prompt_ids, target], dim=1))
        logits = out["logits"] if hasattr(out, "keys") else out[0]
        steps = logits[:, length - 1: length - 1 + target.shape[1]]
        logp = torch.log_softmax(steps, dim=-1).gather(-1, target.unsqueeze(-1))
        return logp.sum(dim=(1, 2)).unsqueeze(1)


@dataclass
class LLMInteractionResult:
    """What :meth:`LLMInteractionAttribution.attribute` returns.

    Attributes:
        input_tokens (list[str]): The ``T`` prompt tokens explained.
        output_tokens (list[str]): The target tokens.
        interactions (Tensor): ``(T, T)`` token-pair interactions.
        token_attr (Tensor or None): ``(T,)`` first-order attributions from the
            same computation (row sums of Integrated Hessians, i.e. Integrated
            Gradients; ``(a - a') * SmoothGrad`` for SmoothHess; None for
            CrossDerivatives).
        score (float): The explained log-probability of the target.
    """

    input_tokens: List[str]
    output_tokens: List[str]
    interactions: Tensor
    token_attr: Optional[Tensor]
    score: float

    def plot_token_interactions(self, **kwargs: Any) -> Tuple[Any, Any]:
        """Heat map with token labels above the top pairs as arcs over the
        prompt; keyword arguments go to
        :func:`captum_higher_order.visualization.plot_token_interactions`.

        Returns:
            tuple: ``(fig, axes)``.
        """
        kwargs.setdefault("title", "log p(" + " ".join(self.output_tokens) + ")")
        return plot_token_interactions(self.input_tokens, self.interactions, **kwargs)


class LLMInteractionAttribution:
    """Token-pair interactions of a prompt for a target continuation.

    Args:
        attr_method (LayerIntegratedHessians, LayerCrossDerivatives or
            LayerSmoothHess): Built on the language model (a Hugging Face
            style causal LM: ``model(input_ids=...)["logits"]``) and its input
            embedding layer; it is copied, not changed.
        tokenizer: A Hugging Face style tokenizer (``encode``,
            ``convert_ids_to_tokens``), e.g. a ``PreTrainedTokenizerFast``
            around a ``tokenizers`` word-level vocabulary.

    Examples::

        >>> import torch
        >>> from captum_higher_order import LayerIntegratedHessians
        >>> from captum_higher_order.text import LLMInteractionAttribution
        >>> class TinyLM(torch.nn.Module):   # stands in for GPT2LMHeadModel
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(6, 4)
        ...         self.head = torch.nn.Linear(4, 6)
        ...     def forward(self, input_ids):
        ...         h = torch.tanh(self.emb(input_ids).cumsum(1))
        ...         return {"logits": self.head(h)}
        >>> class Tok:                         # stands in for a tokenizer
        ...     words = ["<unk>", "not", "a", "good", "film", "bad"]
        ...     def encode(self, text, add_special_tokens=True, return_tensors=None):
        ...         ids = [self.words.index(w) for w in text.split()]
        ...         return torch.tensor([ids]) if return_tensors == "pt" else ids
        ...     def convert_ids_to_tokens(self, ids):
        ...         return [self.words[i] for i in ids]
        >>> _ = torch.manual_seed(0)
        >>> lm = TinyLM().double().eval()
        >>> llm = LLMInteractionAttribution(LayerIntegratedHessians(lm, lm.emb), Tok())
        >>> res = llm.attribute("not a good", target="film", baselines=0, n_steps=8)
        >>> res.interactions.shape, res.input_tokens
        (torch.Size([3, 3]), ['not', 'a', 'good'])
    """

    SUPPORTED_METHODS = (LayerIntegratedHessians, LayerCrossDerivatives, LayerSmoothHess)

    def __init__(self, attr_method: LayerMethod, tokenizer: Any) -> None:
        if not isinstance(attr_method, self.SUPPORTED_METHODS):
            raise TypeError(
                "attr_method must be a LayerIntegratedHessians, LayerCrossDerivatives or "
                f"LayerSmoothHess built on the model, got {type(attr_method).__name__}."
            )
        if not isinstance(attr_method.forward_func, nn.Module):
            raise TypeError("attr_method must be built on the language model (an nn.Module).")
        self.attr_method = attr_method
        self.model: nn.Module = attr_method.forward_func
        self.tokenizer = tokenizer

    def _prompt(self, inp: Any) -> Tuple[Tensor, Optional[Tensor], Optional[int]]:
        if isinstance(inp, str):
            return self.tokenizer.encode(inp, return_tensors="pt"), None, None
        ids = getattr(inp, "inp_tensor", None)
        if not isinstance(ids, Tensor):
            raise TypeError("`inp` must be a str or a Captum TextTokenInput.")
        return ids, getattr(inp, "itp_mask", None), getattr(inp, "baselines", None)

    def _target(self, target: Union[str, Tensor]) -> Tensor:
        if isinstance(target, str):
            ids = self.tokenizer.encode(target, add_special_tokens=False, return_tensors="pt")
        elif isinstance(target, Tensor):
            ids = target
        else:
            raise TypeError("`target` must be a str or a Tensor of token ids.")
        ids = ids.view(1, -1).long()
        if ids.shape[1] == 0:
            raise ValueError("`target` has no tokens.")
        return ids

    def attribute(self, inp: Any, target: Union[str, Tensor], **kwargs: Any
                  ) -> LLMInteractionResult:
        """Interactions of the prompt's tokens for ``log p(target | prompt)``.

        Args:
            inp (str or TextTokenInput): The prompt. A ``TextTokenInput``'s
                ``baselines`` (token id) is the default baseline and its
                ``skip_tokens`` are dropped from the result.
            target (str or Tensor): The continuation whose log-probability is
                explained (token ids without special tokens).
            **kwargs: Passed to ``attr_method.attribute`` (``n_steps``,
                ``sigma``, ``baselines``, ...).

        Returns:
            LLMInteractionResult: tokens, ``(T, T)`` interactions, first-order
            token attributions and the score.
        """
        prompt, itp_mask, base_id = self._prompt(inp)
        device = next(self.model.parameters()).device
        prompt = prompt.to(device)
        target_ids = self._target(target).to(device)
        length = prompt.shape[1]
        scorer = TargetLogProb(self.model, target_ids)
        method = copy(self.attr_method)
        method.forward_func = scorer
        if base_id is not None and "baselines" not in kwargs and "layer_baselines" not in kwargs:
            kwargs["baselines"] = int(base_id)
        # Prompt positions are groups 0..T-1, the target tokens one group T.
        mask = torch.arange(length + target_ids.shape[1], device=device).clamp(max=length)
        token_attr: Optional[Tensor] = None
        if isinstance(method, LayerSmoothHess):
            kwargs["return_gradient"] = True
            full, grad = method.attribute(prompt, target=0, layer_mask=mask, **kwargs)
            token_attr = grad[0, :length].sum(-1) if method.multiplies_by_inputs else None
        else:
            full = method.attribute(prompt, target=0, layer_mask=mask, **kwargs)
        if isinstance(full, tuple):
            full = full[0]
        if isinstance(method, LayerIntegratedHessians):
            token_attr = full[0, :length].sum(-1)
        matrix = full[0, :length, :length]
        with torch.no_grad():
            score = float(scorer(prompt)[0, 0])
        tokens = self.tokenizer.convert_ids_to_tokens(prompt[0].tolist())
        if itp_mask is not None:
            keep = itp_mask.view(-1).to(device)
            matrix = matrix[keep][:, keep]
            token_attr = None if token_attr is None else token_attr[keep]
            tokens = [t for t, k in zip(tokens, keep.tolist()) if k]
        return LLMInteractionResult(
            input_tokens=list(tokens),
            output_tokens=list(self.tokenizer.convert_ids_to_tokens(target_ids[0].tolist())),
            interactions=matrix.detach(), token_attr=None if token_attr is None
            else token_attr.detach(), score=score,
        )
