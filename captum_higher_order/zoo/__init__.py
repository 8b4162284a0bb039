"""Small embedded models that work offline (weights committed, < 50 KB each).

- :func:`load_digits_cnn`: a ReLU CNN for scikit-learn's 8x8 digits
  (test accuracy in :func:`digits_metadata`), with :func:`digits_samples` (a few
  held-out digits shipped as JSON) and :func:`load_digits_data` (the full split,
  needs scikit-learn).
- :func:`load_planted_mlp`: a GELU MLP fitted to :func:`planted_function`, whose
  interactions (:data:`PLANTED_PAIRS`, :data:`PLANTED_SETS`) are known.

Reproduce the weights with ``python -m captum_higher_order.zoo.train``.
"""

from captum_higher_order.zoo.digits_cnn import (
    DigitsCNN,
    digits_metadata,
    digits_samples,
    digits_split,
    load_digits_cnn,
    load_digits_data,
)
from captum_higher_order.zoo.planted_mlp import (
    FEATURE_NAMES,
    PLANTED_PAIRS,
    PLANTED_SETS,
    PlantedMLP,
    load_planted_mlp,
    planted_function,
    planted_metadata,
    planted_pair_matrix,
    sample_inputs,
)

__all__ = [
    "DigitsCNN",
    "FEATURE_NAMES",
    "PLANTED_PAIRS",
    "PLANTED_SETS",
    "PlantedMLP",
    "digits_metadata",
    "digits_samples",
    "digits_split",
    "load_digits_cnn",
    "load_digits_data",
    "load_planted_mlp",
    "planted_function",
    "planted_metadata",
    "planted_pair_matrix",
    "sample_inputs",
]
