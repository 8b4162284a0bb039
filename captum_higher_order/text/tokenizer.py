"""A word-level tokenizer built offline (no download), for tests and tutorials."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["word_level_tokenizer"]


def word_level_tokenizer(words: Sequence[str], unk_token: str = "[UNK]",
                         pad_token: str = "[PAD]") -> Any:
    """A Hugging Face ``PreTrainedTokenizerFast`` that splits on whitespace and
    punctuation and maps each word of ``words`` to its index (unknown words to
    ``unk_token``); usable with Captum's ``TextTokenInput``.

    Args:
        words (sequence of str): The vocabulary, in id order. ``unk_token`` and
            ``pad_token`` are prepended if missing.
        unk_token (str, optional): Default: ``"[UNK]"``
        pad_token (str, optional): Default: ``"[PAD]"``

    Returns:
        transformers.PreTrainedTokenizerFast: The tokenizer.

    Raises:
        ImportError: ``tokenizers``/``transformers`` are missing (install the
            ``text`` extra).

    Examples::

        >>> from captum_higher_order.text.tokenizer import word_level_tokenizer
        >>> tok = word_level_tokenizer(["not", "good"])
        >>> tok.encode("not good at all")
        [2, 3, 0, 0]
    """
    try:
        import tokenizers
        import transformers
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "word_level_tokenizer needs `tokenizers` and `transformers`: "
            "pip install 'captum-higher-order[text]'."
        ) from err
    vocab = [w for w in (unk_token, pad_token) if w not in words] + list(words)
    if len(set(vocab)) != len(vocab):
        raise ValueError("`words` contains duplicates.")
    core = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=unk_token)
    )
    core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token=unk_token, pad_token=pad_token
    )
