"""Data sets with known ground truth for testing attribution methods."""

from captum_higher_order.datasets.synthetic import (
    NID_FUNCTIONS,
    SyntheticFunction,
    nid_function,
    planted_products,
)

__all__ = ["NID_FUNCTIONS", "SyntheticFunction", "nid_function", "planted_products"]
