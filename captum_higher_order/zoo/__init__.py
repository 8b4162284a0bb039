"""Small embedded models that work offline (weights committed, < 50 KB each).

- :func:`load_digits_cnn`: a ReLU CNN for scikit-learn's 8x8 digits
  (test accuracy in :func:`digits_metadata`), with :func:`digits_samples` (a few
  held-out digits shipped as JSON) and :func:`load_digits_data` (the full split,
  needs scikit-learn).
- :func:`load_planted_mlp`: a GELU MLP fitted to :func:`planted_function`, whose
  interactions (:data:`PLANTED_PAIRS`, :data:`PLANTED_SETS`) are known.
- :mod:`~captum_higher_order.zoo.synthetic`: functions with known interactions
  (no weights): the NID suite :func:`nid_function` ``F1 .. F10`` and
  :func:`planted_products`.

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
from captum_higher_order.zoo.synthetic import (
    NID_FUNCTIONS,
    SyntheticFunction,
    nid_function,
    planted_products,
)
from captum_higher_order.zoo.text_toy import (
    TextToy,
    load_text_toy,
    planted_token_pairs,
    text_toy_metadata,
)

__all__ = [
    "DigitsCNN",
    "FEATURE_NAMES",
    "NID_FUNCTIONS",
    "PLANTED_PAIRS",
    "PLANTED_SETS",
    "PlantedMLP",
    "SyntheticFunction",
    "digits_metadata",
    "digits_samples",
    "digits_split",
    "load_digits_cnn",
    "load_digits_data",
    "load_planted_mlp",
    "nid_function",
    "planted_function",
    "planted_metadata",
    "planted_pair_matrix",
    "planted_products",
    "sample_inputs",
    "TextToy",
    "load_text_toy",
    "planted_token_pairs",
    "text_toy_metadata",
]
