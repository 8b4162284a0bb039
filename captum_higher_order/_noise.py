"""Seeded Gaussian noise that does not depend on chunking, batching or device.

SmoothHess (Stein's estimator), the Taylor-model metrics (points in a ball) and
any other Monte-Carlo method draw their noise here, so the same seed gives the
same draws whatever ``batch_size`` the call uses, whichever inputs share the
batch, and on CPU and CUDA alike (see "Reproducibility" in docs/design.md).
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

__all__ = ["GeneratorType", "NOISE_BLOCK", "base_seed", "NoiseStream"]

GeneratorType = Union[None, int, torch.Generator]

#: Noise is drawn in blocks of this many rows, each block from its own
#: generator seeded from the base seed, so results do not depend on
#: ``batch_size`` or on which other inputs share the call.
NOISE_BLOCK = 32


def base_seed(generator: GeneratorType) -> int:
    """One 62-bit seed from an int, a ``torch.Generator`` (advanced once) or,
    for None, torch's global RNG, so ``torch.manual_seed`` reproduces a call
    exactly as it does for Captum's ``NoiseTunnel``."""
    if isinstance(generator, bool):
        raise TypeError("`generator` must be None, an int seed or a torch.Generator.")
    if isinstance(generator, int):
        return int(generator) % 2**62
    if isinstance(generator, torch.Generator):
        return int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    if generator is None:
        return int(torch.randint(2**62, (1,)))
    raise TypeError(
        f"`generator` must be None, an int seed or a torch.Generator, got "
        f"{type(generator).__name__}."
    )


class NoiseStream:
    """Standard normal vectors ``z_k``, ``k = 0, 1, ...``, of length ``size``.

    Block ``j`` (rows ``j*NOISE_BLOCK ...``) comes from a CPU generator seeded
    with ``(seed, j)``, so any range of rows can be drawn in any order and
    chunking never changes the draws. Drawing on the CPU and copying makes the
    stream identical on every device (CUDA's generator gives other numbers for
    the same seed). Every input of a call sees the same ``z_k`` (common random
    numbers): each input's estimate is still an unbiased Monte-Carlo average,
    and an input's result is the same alone or in a batch.
    """

    def __init__(self, seed: int, size: int, dtype: torch.dtype, device: torch.device):
        self.seed, self.size, self.dtype, self.device = seed, size, dtype, device

    def _generator(self, j: int) -> torch.Generator:
        gen = torch.Generator(device="cpu")
        gen.manual_seed((self.seed * 1_000_003 + j) % 2**63)
        return gen

    def draw(self, start: int, stop: int) -> Tensor:
        """``z_start .. z_{stop-1}`` as a ``(stop - start, size)`` tensor."""
        out = torch.empty(stop - start, self.size, dtype=self.dtype)
        k = start
        while k < stop:
            j, offset = divmod(k, NOISE_BLOCK)
            take = min(stop - k, NOISE_BLOCK - offset)
            if offset == 0 and take == NOISE_BLOCK:  # a whole block: straight in
                torch.randn(
                    NOISE_BLOCK, self.size, generator=self._generator(j),
                    dtype=self.dtype, out=out[k - start : k - start + take],
                )
            else:
                block = torch.randn(
                    NOISE_BLOCK, self.size, generator=self._generator(j), dtype=self.dtype
                )
                out[k - start : k - start + take] = block[offset : offset + take]
            k += take
        return out.to(self.device)
