"""Synthetic functions with known feature interactions.

The ten test functions ``F1 .. F10`` are the suite of Tsang, Cheng and Liu
(2018), "Detecting Statistical Interactions from Neural Network Weights" (ICLR),
Table 1, which Lerman et al. (2021, "Explaining Local, Global, and Higher-Order
Interactions in Deep Learning", ICCV) reuse to score cross-derivative
interaction detection. Each function has 10 inputs and a set of ground-truth
interactions: the groups of variables that appear inside one non-additive term.
The paper writes variables 1-based (``x1 .. x10``); here the ground truth is
0-based feature indices (``x1`` is column 0), the convention of
:func:`captum_higher_order.metrics.interactions.interaction_auc`.

Input domains (Tsang et al. 2018, Sec. 5.1): ``x_i ~ U(-1, 1)`` for every
function except ``F1``, where ``x4, x5, x8, x10 ~ U(0.6, 1)`` and the other
variables ``~ U(0, 1)``.

Two terms are written so that they are defined on the whole domain, as in the
authors' released code and common reimplementations (the interaction
structure is unchanged):

* ``F2``: ``sqrt(|x7| / (1 + |x8|))`` (the table prints ``sqrt(x7 / (1 + |x8|))``,
  undefined for ``x7 < 0`` on ``U(-1, 1)``).
* ``F3``, ``F4``: ``x3^(2|x4|)`` is computed as ``(x3^2)^|x4|`` (the form of the
  authors' demo notebook), real for negative ``x3``.

Everything is written with torch operations, so a function can itself be used
as a (non-trained) forward function for :class:`CrossDerivatives`: its cross
derivatives are the exact ones (almost everywhere for the ``|.|`` and ``max``
terms).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    "SyntheticFunction",
    "NID_FUNCTIONS",
    "nid_function",
    "planted_products",
]

Domain = Tuple[Tuple[float, float], ...]


@dataclass(frozen=True)
class SyntheticFunction:
    """A test function with its input domain and ground-truth interactions.

    Attributes:
        name (str): E.g. ``"F3"``.
        formula (str): The formula, 1-based variables as in the source paper.
        fn (Callable): ``(N, num_features) -> (N,)`` in torch operations.
        domain (tuple): ``(low, high)`` of the uniform distribution of each input.
        interactions (tuple[frozenset[int], ...]): Ground-truth interaction sets,
            0-based feature indices.
        source (str): Where the formula comes from.
    """

    name: str
    formula: str
    fn: Callable[[Tensor], Tensor]
    domain: Domain
    interactions: Tuple[FrozenSet[int], ...]
    source: str

    @property
    def num_features(self) -> int:
        return len(self.domain)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self.name} takes inputs of shape (N, {self.num_features}), got "
                f"{tuple(x.shape)}."
            )
        return self.fn(x)

    def sample(
        self,
        num_samples: int,
        seed: Union[int, torch.Generator, None] = 0,
        dtype: torch.dtype = torch.float32,
    ) -> Tuple[Tensor, Tensor]:
        """Draw ``x`` uniformly from :attr:`domain` and return ``(x, f(x))``.

        Args:
            num_samples (int): Number of rows.
            seed (int or torch.Generator, optional): Seed or generator (CPU).
                Default: 0
            dtype (torch.dtype, optional): Default: ``torch.float32``
        """
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(
            0 if seed is None else int(seed)
        )
        low = torch.tensor([d[0] for d in self.domain], dtype=torch.float64)
        high = torch.tensor([d[1] for d in self.domain], dtype=torch.float64)
        u = torch.rand(num_samples, self.num_features, generator=gen, dtype=torch.float64)
        x = low + (high - low) * u
        return x.to(dtype), self(x).to(dtype)

    def pairs(self) -> Tuple[Tuple[int, int], ...]:
        """The ground-truth pairs: every pair inside a ground-truth set."""
        found = {
            pair
            for s in self.interactions
            for pair in itertools.combinations(sorted(s), 2)
        }
        return tuple(sorted(found))


def _cols(x: Tensor) -> Tuple[Tensor, ...]:
    return tuple(x.unbind(dim=1))


_TSANG = (
    "Tsang, Cheng & Liu (2018), Detecting Statistical Interactions from Neural "
    "Network Weights, ICLR, Table 1"
)


def _f1(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        math.pi ** (x1 * x2) * torch.sqrt(2 * x3)
        - torch.asin(x4)
        + torch.log(x3 + x5)
        - (x9 / x10) * torch.sqrt(x7 / x8)
        - x2 * x7
    )


def _f2(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        math.pi ** (x1 * x2) * torch.sqrt(2 * x3.abs())
        - torch.asin(0.5 * x4)
        + torch.log((x3 + x5).abs() + 1)
        - (x9 / (1 + x10.abs())) * torch.sqrt(x7.abs() / (1 + x8.abs()))
        - x2 * x7
    )


def _f3(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        torch.exp((x1 - x2).abs())
        + (x2 * x3).abs()
        - (x3**2) ** x4.abs()
        + torch.log(x4**2 + x5**2 + x7**2 + x8**2)
        + x9
        + 1 / (1 + x10**2)
    )


def _f4(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return _f3(x) + (x1 * x4) ** 2


def _f5(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        1 / (1 + x1**2 + x2**2 + x3**2)
        + torch.sqrt(torch.exp(x4 + x5))
        + (x6 + x7).abs()
        + x8 * x9 * x10
    )


def _f6(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        torch.exp((x1 * x2).abs() + 1)
        - torch.exp((x3 + x4).abs() + 1)
        + torch.cos(x5 + x6 - x8)
        + torch.sqrt(x8**2 + x9**2 + x10**2)
    )


def _f7(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        (torch.atan(x1) + torch.atan(x2)) ** 2
        + torch.clamp(x3 * x4 + x6, min=0)
        - 1 / (1 + (x4 * x5 * x6 * x7 * x8) ** 2)
        + (x7.abs() / (1 + x9.abs())) ** 5
        + x.sum(dim=1)
    )


def _f8(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        x1 * x2
        + 2 ** (x3 + x5 + x6)
        + 2 ** (x3 + x4 + x5 + x7)
        + torch.sin(x7 * torch.sin(x8 + x9))
        + torch.acos(0.9 * x10)
    )


def _f9(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        torch.tanh(x1 * x2 + x3 * x4) * torch.sqrt(x5.abs())
        + torch.exp(x5 + x6)
        + torch.log((x6 * x7 * x8) ** 2 + 1)
        + x9 * x10
        + 1 / (1 + x10.abs())
    )


def _f10(x: Tensor) -> Tensor:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10 = _cols(x)
    return (
        torch.sinh(x1 + x2)
        + torch.acos(torch.tanh(x3 + x5 + x7))
        + torch.cos(x4 + x5)
        + 1 / torch.cos(x7 * x9)
    )


def _sets(*one_based: Iterable[int]) -> Tuple[FrozenSet[int], ...]:
    return tuple(frozenset(i - 1 for i in s) for s in one_based)


_SYM: Domain = ((-1.0, 1.0),) * 10
_F1_DOMAIN: Domain = tuple(
    (0.6, 1.0) if i in (4, 5, 8, 10) else (0.0, 1.0) for i in range(1, 11)
)

#: The ten NID test functions, keyed ``"F1" .. "F10"``.
NID_FUNCTIONS: Dict[str, SyntheticFunction] = {
    f.name: f
    for f in (
        SyntheticFunction(
            "F1",
            "pi^(x1 x2) sqrt(2 x3) - asin(x4) + log(x3 + x5) - (x9 / x10) "
            "sqrt(x7 / x8) - x2 x7",
            _f1, _F1_DOMAIN, _sets({1, 2, 3}, {2, 7}, {3, 5}, {7, 8, 9, 10}), _TSANG,
        ),
        SyntheticFunction(
            "F2",
            "pi^(x1 x2) sqrt(2 |x3|) - asin(0.5 x4) + log(|x3 + x5| + 1) - "
            "(x9 / (1 + |x10|)) sqrt(|x7| / (1 + |x8|)) - x2 x7",
            _f2, _SYM, _sets({1, 2, 3}, {2, 7}, {3, 5}, {7, 8, 9, 10}), _TSANG,
        ),
        SyntheticFunction(
            "F3",
            "exp|x1 - x2| + |x2 x3| - x3^(2|x4|) + log(x4^2 + x5^2 + x7^2 + x8^2) "
            "+ x9 + 1 / (1 + x10^2)",
            _f3, _SYM, _sets({1, 2}, {2, 3}, {3, 4}, {4, 5, 7, 8}), _TSANG,
        ),
        SyntheticFunction(
            "F4",
            "exp|x1 - x2| + |x2 x3| - x3^(2|x4|) + (x1 x4)^2 + log(x4^2 + x5^2 + "
            "x7^2 + x8^2) + x9 + 1 / (1 + x10^2)",
            _f4, _SYM, _sets({1, 2}, {2, 3}, {3, 4}, {1, 4}, {4, 5, 7, 8}), _TSANG,
        ),
        SyntheticFunction(
            "F5",
            "1 / (1 + x1^2 + x2^2 + x3^2) + sqrt(exp(x4 + x5)) + |x6 + x7| + x8 x9 x10",
            _f5, _SYM, _sets({1, 2, 3}, {4, 5}, {6, 7}, {8, 9, 10}), _TSANG,
        ),
        SyntheticFunction(
            "F6",
            "exp(|x1 x2| + 1) - exp(|x3 + x4| + 1) + cos(x5 + x6 - x8) + "
            "sqrt(x8^2 + x9^2 + x10^2)",
            _f6, _SYM, _sets({1, 2}, {3, 4}, {5, 6, 8}, {8, 9, 10}), _TSANG,
        ),
        SyntheticFunction(
            "F7",
            "(atan(x1) + atan(x2))^2 + max(x3 x4 + x6, 0) - 1 / (1 + (x4 x5 x6 x7 "
            "x8)^2) + (|x7| / (1 + |x9|))^5 + sum_i x_i",
            _f7, _SYM, _sets({1, 2}, {3, 4, 6}, {4, 5, 6, 7, 8}, {7, 9}), _TSANG,
        ),
        SyntheticFunction(
            "F8",
            "x1 x2 + 2^(x3 + x5 + x6) + 2^(x3 + x4 + x5 + x7) + sin(x7 sin(x8 + x9)) "
            "+ acos(0.9 x10)",
            _f8, _SYM, _sets({1, 2}, {3, 5, 6}, {3, 4, 5, 7}, {7, 8, 9}), _TSANG,
        ),
        SyntheticFunction(
            "F9",
            "tanh(x1 x2 + x3 x4) sqrt|x5| + exp(x5 + x6) + log((x6 x7 x8)^2 + 1) + "
            "x9 x10 + 1 / (1 + |x10|)",
            _f9, _SYM, _sets({1, 2, 3, 4, 5}, {5, 6}, {6, 7, 8}, {9, 10}), _TSANG,
        ),
        SyntheticFunction(
            "F10",
            "sinh(x1 + x2) + acos(tanh(x3 + x5 + x7)) + cos(x4 + x5) + sec(x7 x9)",
            _f10, _SYM, _sets({1, 2}, {3, 5, 7}, {4, 5}, {7, 9}), _TSANG,
        ),
    )
}


def nid_function(name: Union[str, int]) -> SyntheticFunction:
    """One of the NID test functions by name (``"F3"``) or number (``3``).

    Examples::

        >>> from captum_higher_order.zoo.synthetic import nid_function
        >>> f = nid_function(5)
        >>> x, y = f.sample(100, seed=0)
        >>> x.shape, y.shape, sorted(map(sorted, f.interactions))
        (torch.Size([100, 10]), torch.Size([100]), [[0, 1, 2], [3, 4], [5, 6], [7, 8, 9]])
    """
    key = f"F{name}" if isinstance(name, int) else str(name).upper()
    if key not in NID_FUNCTIONS:
        raise ValueError(f"Unknown NID function {name!r}; choose F1 .. F10.")
    return NID_FUNCTIONS[key]


def planted_products(
    num_features: int = 10,
    interactions: Optional[Sequence[Sequence[int]]] = None,
    num_interactions: int = 3,
    order: int = 2,
    main_effects: bool = True,
    seed: int = 0,
) -> SyntheticFunction:
    r"""A sum of planted products with known interaction sets.

    .. math::
        f(x) = \sum_i a_i x_i + \sum_{S} c_S \prod_{i \in S} x_i,
        \qquad x \sim U(-1, 1)^d,

    with coefficients ``a_i ~ U(-1, 1)`` (when ``main_effects``) and
    ``|c_S| ~ U(1, 2)`` with a random sign, so every planted term is
    visible. The mixed partial of a product over exactly the set ``S`` is
    ``c_S``, and any set that is not a subset of a planted ``S`` has a zero
    cross derivative everywhere: the "sums of planted products" oracle.

    Args:
        num_features (int, optional): Input dimension ``d``. Default: 10
        interactions (sequence of sequences of int, optional): The sets ``S``
            (0-based). None draws ``num_interactions`` disjoint random sets of
            size ``order``. Default: None
        num_interactions (int, optional): Used when ``interactions`` is None.
            Default: 3
        order (int, optional): Size of the random sets. Default: 2
        main_effects (bool, optional): Add the linear term. Default: True
        seed (int, optional): Seed of the random sets and coefficients.
            Default: 0

    Returns:
        SyntheticFunction: with ``interactions`` the planted sets.

    Examples::

        >>> from captum_higher_order.zoo.synthetic import planted_products
        >>> f = planted_products(6, interactions=[(0, 1), (2, 3, 4)])
        >>> sorted(map(sorted, f.interactions))
        [[0, 1], [2, 3, 4]]
    """
    gen = torch.Generator().manual_seed(seed)
    if interactions is None:
        if num_interactions * order > num_features:
            raise ValueError(
                f"{num_interactions} disjoint sets of size {order} need at least "
                f"{num_interactions * order} features, got {num_features}."
            )
        perm = torch.randperm(num_features, generator=gen).tolist()
        interactions = [
            sorted(perm[i * order : (i + 1) * order]) for i in range(num_interactions)
        ]
    sets = tuple(frozenset(int(i) for i in s) for s in interactions)
    for s in sets:
        if len(s) < 2 or min(s) < 0 or max(s) >= num_features:
            raise ValueError(
                f"Interaction {sorted(s)} must hold >= 2 distinct indices in "
                f"[0, {num_features})."
            )
    linear = (2 * torch.rand(num_features, generator=gen, dtype=torch.float64) - 1) * float(
        main_effects
    )
    magnitude = 1 + torch.rand(len(sets), generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(len(sets), generator=gen) < 0.5, -1.0, 1.0).double()
    coef = (magnitude * sign).tolist()
    members = [sorted(s) for s in sets]

    def fn(x: Tensor) -> Tensor:
        out = x @ linear.to(x.dtype).to(x.device)
        for c, idx in zip(coef, members):
            out = out + c * x[:, idx].prod(dim=1)
        return out

    formula = " + ".join(
        [f"{c:.3f} " + " ".join(f"x{i + 1}" for i in idx) for c, idx in zip(coef, members)]
    )
    if main_effects:
        formula = "sum_i a_i x_i + " + formula
    return SyntheticFunction(
        "planted_products",
        formula,
        fn,
        ((-1.0, 1.0),) * num_features,
        sets,
        "sum of planted products (this package)",
    )
