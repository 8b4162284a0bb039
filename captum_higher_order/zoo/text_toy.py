"""A tiny transformer over a synthetic language with planted token pairs.

Sentences of 6 to 10 words (padded to :data:`MAX_LEN`) hold one sentiment word
(``good``/``great`` positive, ``bad``/``awful`` negative), optionally the
negation ``not``, the modifiers ``loved``/``hated``, the words ``sun``,
``beach`` and ``hot``, and distractors. The model has two outputs, fitted by
least squares to the planted scores

* ``y0 = 2 s (1 - 2 [not]) + [loved] - [hated]`` (sentiment; ``s = +-1``):
  ``not`` flips the sentiment word, the only pair that interacts in ``y0``;
  ``loved``/``hated`` act alone (main effects without interaction, which is
  what fools a first-order ``|a_i a_j|`` ranking);
* ``y1 = 2 [sun and beach] + [hot]`` (topic): the conjunction ``sun``+``beach``
  is the only pair in ``y1``; ``hot`` acts alone.

The label of a sentence is ``y0 > 0`` (and ``y1 > 1`` for the topic).
:func:`planted_token_pairs` gives the ground truth per sentence and output.
Reproduce the weights with ``python -m captum_higher_order.zoo.train_text``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order.zoo._files import ZOO_DIR, load_committed, read_json

TEXT_WEIGHTS = os.path.join(ZOO_DIR, "text_toy.pt")
TEXT_META = os.path.join(ZOO_DIR, "text_toy.json")

SPECIAL = ["[PAD]", "[UNK]"]
SENTIMENT = {"good": 1.0, "great": 1.0, "bad": -1.0, "awful": -1.0}
MARKERS = ["not", "loved", "hated", "sun", "beach", "hot"]
DISTRACTORS = ["the", "film", "was", "a", "it", "and", "this", "movie", "plot", "is",
               "day", "we"]
VOCAB: List[str] = SPECIAL + list(SENTIMENT) + MARKERS + DISTRACTORS
WORD_ID: Dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
PAD_ID = 0
MAX_LEN = 10
#: How often each marker appears in a sentence.
MARKER_RATE = {"not": 0.5, "loved": 0.3, "hated": 0.3, "sun": 0.5, "beach": 0.5, "hot": 0.3}


def sentence_scores(words: List[str]) -> Tuple[float, float]:
    """The planted ``(y0, y1)`` of one sentence."""
    present = set(words)
    s = next(SENTIMENT[w] for w in words if w in SENTIMENT)
    y0 = 2.0 * s * (1.0 - 2.0 * ("not" in present))
    y0 += float("loved" in present) - float("hated" in present)
    y1 = 2.0 * float({"sun", "beach"} <= present) + float("hot" in present)
    return y0, y1


def sample_sentences(n: int, seed: int = 0) -> List[List[str]]:
    """``n`` random sentences (lists of words, no padding), reproducible."""
    gen = torch.Generator().manual_seed(seed)
    sentiments = list(SENTIMENT)
    out = []
    for _ in range(n):
        words = [sentiments[int(torch.randint(4, (1,), generator=gen))]]
        words += [m for m in MARKERS if float(torch.rand(1, generator=gen)) < MARKER_RATE[m]]
        length = max(len(words), int(torch.randint(6, MAX_LEN + 1, (1,), generator=gen)))
        while len(words) < length:
            words.append(DISTRACTORS[int(torch.randint(len(DISTRACTORS), (1,), generator=gen))])
        order = torch.randperm(len(words), generator=gen).tolist()
        out.append([words[i] for i in order])
    return out


def encode(sentences: List[List[str]]) -> Tuple[Tensor, Tensor]:
    """Token ids and attention mask, both ``(N, MAX_LEN)`` (right padding)."""
    ids = torch.full((len(sentences), MAX_LEN), PAD_ID, dtype=torch.long)
    for row, words in enumerate(sentences):
        ids[row, : len(words)] = torch.tensor([WORD_ID.get(w, 1) for w in words])
    return ids, (ids != PAD_ID).long()


def planted_token_pairs(words: List[str], output: int) -> List[Tuple[int, int]]:
    """Positions ``(i, j)``, ``i < j``, of the planted pairs of ``output`` (0 or
    1) in a sentence: ``not`` with the sentiment word, or ``sun`` with
    ``beach`` (when both are present)."""
    if output not in (0, 1):
        raise ValueError("`output` must be 0 (sentiment) or 1 (topic).")
    first, second = ("not", None) if output == 0 else ("sun", "beach")
    if first not in words:
        return []
    i = words.index(first)
    if second is None:
        j = next(k for k, w in enumerate(words) if w in SENTIMENT)
    elif second in words:
        j = words.index(second)
    else:
        return []
    return [(min(i, j), max(i, j))]


class TextToy(nn.Module):
    """Embedding + positions, two GELU encoder layers (d=32), masked mean pool,
    two outputs. ``forward(ids, attention_mask) -> (B, 2)``. ``max_len``
    other than :data:`MAX_LEN` is for timing longer inputs (random weights)."""

    def __init__(self, dim: int = 32, heads: int = 2, layers: int = 2,
                 max_len: int = MAX_LEN) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), dim)
        self.position = nn.Parameter(torch.zeros(max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0,
                                           batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.embedding(ids) + self.position[: ids.shape[1]]
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return self.head(torch.tanh((h * m).sum(1) / m.sum(1)))


def load_text_toy(pretrained: bool = True,
                  device: Union[str, torch.device, None] = None) -> TextToy:
    """The committed tiny text model, in eval mode.

    Examples::

        >>> from captum_higher_order.zoo.text_toy import encode, load_text_toy
        >>> model = load_text_toy()
        >>> ids, mask = encode([["the", "film", "was", "not", "good"]])
        >>> bool(model(ids, mask)[0, 0] < 0)       # "not good" is negative
        True
    """
    return load_committed(TextToy(), TEXT_WEIGHTS, pretrained, device)


def text_toy_metadata() -> Dict[str, object]:
    """Training settings and test error recorded when the weights were made."""
    return read_json(TEXT_META)
