"""Token-pair interactions of a language model's prompt, Captum's
``LLMGradientAttribution`` style.

The score is the sum of the log-probabilities of the target tokens given the
prompt (teacher forcing: the target is appended to the prompt and the model
runs once). The interaction method varies the embeddings of the prompt tokens
only: the target tokens keep their embeddings at the input and at the baseline,
so their ``Delta`` is zero and they form one extra group that is cropped away.
"""

from __future__ import annotations

import re
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
        input_tokens (list[str]): The ``T`` prompt tokens explained (template
            values or groups for a ``TextTemplateInput``).
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

    def _prompt(self, inp: Any) -> Tuple[Tensor, Tensor, List[str], Optional[int]]:
        """Token ids ``(1, T)``, the group of every token (``-1``: not explained),
        the group names and the baseline token id of a TextTokenInput."""
        if isinstance(inp, str):
            ids = self.tokenizer.encode(inp, return_tensors="pt")
            names = self.tokenizer.convert_ids_to_tokens(ids[0].tolist())
            return ids, torch.arange(ids.shape[1]), list(names), None
        if hasattr(inp, "format_fn") and hasattr(inp, "values"):
            return self._template_prompt(inp) + (None,)
        ids = getattr(inp, "inp_tensor", None)
        if not isinstance(ids, Tensor):
            raise TypeError("`inp` must be a str, a Captum TextTokenInput or TextTemplateInput.")
        groups = torch.arange(ids.shape[1])
        itp_mask = getattr(inp, "itp_mask", None)
        if itp_mask is not None:  # skip_tokens: not explained
            keep = itp_mask.view(-1).bool()
            groups = torch.full_like(groups, -1)
            groups[keep] = torch.arange(int(keep.sum()))
        return ids, groups, list(inp.values), getattr(inp, "baselines", None)

    def _template_prompt(self, inp: Any) -> Tuple[Tensor, Tensor, List[str]]:
        """A TextTemplateInput: one group per template value (or per ``mask``
        id); the template's own text is not explained. Tokens are assigned to
        values by their character offsets (needs a fast tokenizer)."""
        values = list(inp.values)
        marks = [f"\ue000{i}\ue001" for i in range(len(values))]
        keys = list(getattr(inp, "dict_keys", []) or [])
        marked = inp.format_fn(**dict(zip(keys, marks))) if keys else inp.format_fn(*marks)
        text, spans, pos = "", [], 0
        for match in re.finditer("\ue000(\\d+)\ue001", marked):
            text += marked[pos:match.start()]
            i = int(match.group(1))
            spans.append((len(text), len(text) + len(values[i]), i))
            text += values[i]
            pos = match.end()
        text += marked[pos:]
        enc = self.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
        feature = list(getattr(inp, "formatted_mask", None) or range(len(values)))
        groups = torch.full((enc["input_ids"].shape[1],), -1, dtype=torch.long)
        for t, (lo, hi) in enumerate(enc["offset_mapping"][0].tolist()):
            for a, b, i in spans:
                if hi > lo and a <= lo < b:
                    groups[t] = feature[i]
        count = max(feature) + 1 if feature else 0
        names = [" ".join(v for v, f in zip(values, feature) if f == g) for g in range(count)]
        return enc["input_ids"], groups, names

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
            inp (str, TextTokenInput or TextTemplateInput): The prompt. A
                ``TextTokenInput``'s ``baselines`` (token id) is the default
                baseline and its ``skip_tokens`` are not explained. A
                ``TextTemplateInput`` gives one row per template value (or
                ``mask`` group): the interactions of its features; its string
                baselines are not used (a path in embedding space needs the
                same tokens: pass ``baselines=`` a token id).
            target (str or Tensor): The continuation whose log-probability is
                explained (token ids without special tokens).
            **kwargs: Passed to ``attr_method.attribute`` (``n_steps``,
                ``sigma``, ``baselines``, ...).

        Returns:
            LLMInteractionResult: tokens, ``(T, T)`` interactions, first-order
            token attributions and the score.
        """
        prompt, groups, names, base_id = self._prompt(inp)
        device = next(self.model.parameters()).device
        prompt = prompt.to(device)
        target_ids = self._target(target).to(device)
        num = len(names)
        scorer = TargetLogProb(self.model, target_ids)
        method = copy(self.attr_method)
        method.forward_func = scorer
        if base_id is not None and "baselines" not in kwargs and "layer_baselines" not in kwargs:
            kwargs["baselines"] = int(base_id)
        # Explained tokens form groups 0..G-1; the rest and the target one group G.
        rest = torch.full((target_ids.shape[1],), num, dtype=torch.long)
        mask = torch.cat([groups.masked_fill(groups < 0, num), rest]).to(device)
        token_attr: Optional[Tensor] = None
        if isinstance(method, LayerSmoothHess):
            kwargs["return_gradient"] = True
            full, grad = method.attribute(prompt, target=0, layer_mask=mask, **kwargs)
            if method.multiplies_by_inputs:
                per_group = torch.zeros(num + 1, dtype=grad.dtype, device=device)
                token_attr = per_group.index_add_(0, mask, grad[0].sum(-1))[:num]
        else:
            full = method.attribute(prompt, target=0, layer_mask=mask, **kwargs)
        if isinstance(full, tuple):
            full = full[0]
        if isinstance(method, LayerIntegratedHessians):
            token_attr = full[0, :num].sum(-1)  # rows sum to Integrated Gradients
        matrix = full[0, :num, :num]
        with torch.no_grad():
            score = float(scorer(prompt)[0, 0])
        return LLMInteractionResult(
            input_tokens=names,
            output_tokens=list(self.tokenizer.convert_ids_to_tokens(target_ids[0].tolist())),
            interactions=matrix.detach(), token_attr=None if token_attr is None
            else token_attr.detach(), score=score,
        )
