"""Text models: Hugging Face ``transformers`` wrappers and the LLM prompt wrapper.

Needs the optional extra ``pip install captum-higher-order[text]`` only for
Hugging Face models; nothing here imports ``transformers`` at import time.
"""

from captum_higher_order.text.hf import HFForward
from captum_higher_order.text.llm import (
    LLMInteractionAttribution,
    LLMInteractionResult,
    TargetLogProb,
)
from captum_higher_order.text.tokenizer import word_level_tokenizer

__all__ = [
    "HFForward",
    "LLMInteractionAttribution",
    "LLMInteractionResult",
    "TargetLogProb",
    "word_level_tokenizer",
]
