r"""Dataset-scale explanations: streaming, resumable and distributed aggregation.

The question users ask most about interactions is global: *which feature pairs
does my model rely on across my whole dataset?* Lerman et al. (2021) define the
global interaction of a feature set as an aggregate of the local scores over the
data, ``mean_x |d^k f / dx_i1 ... dx_ik|`` by default. :func:`explain_dataset`
runs any attribution over every batch of a dataset and keeps only running
statistics, so memory does not grow with the number of samples:

* per element, the running float64 sum of ``q`` and the running sum of squared
  deviations ``M2`` of ``q`` (Welford 1962; merged batch by batch with the
  pairwise update of Chan, Golub & LeVeque 1979), where ``q = a`` for
  ``"mean"``, ``|a|`` for ``"mean_abs"`` and ``a ** 2`` for ``"rms"``; or the
  running ``max |a|`` for ``"max_abs"``;
* the value is ``sum / n`` (``sqrt(sum / n)`` for ``"rms"``) and the standard
  error across samples is ``sqrt(M2 / (n - 1)) / sqrt(n)`` (delta method for
  ``"rms"``).

Sparse per-sample rankings (``CrossDerivatives`` with ``top_k``) are aggregated
per feature set: how many samples ranked it and its summed, squared or largest
score (see :meth:`DatasetExplanation.rank`).

Runs survive interruption: with ``checkpoint=PATH`` the partial statistics and
the number of batches done are written atomically (temporary file, then
``os.replace``) every ``checkpoint_every`` batches, with a fingerprint of the
method, the model's weights and the settings, and a digest of every batch read;
a rerun with the same path re-reads and checks the batches done, then resumes
and gives the same result as an uninterrupted run. A checkpoint that is corrupt
or was written for another configuration or other data is refused with
:class:`CheckpointError` and never overwritten.

When ``torch.distributed`` is initialised (``torchrun --nproc_per_node=N``),
every rank takes a shard of the batches, accumulates locally, and the ranks
combine with ``all_reduce`` (sums, maxima and the between-rank variance term) at
every checkpoint and at the end. Rank 0 writes the checkpoint; every rank gets
the combined result. Works with ``gloo`` (CPU) and ``nccl`` (GPU: reduced on
the rank's current CUDA device).

The package, one module per seam:

* :mod:`~captum_higher_order.dataset.batching`: what a batch is (unpacking,
  shapes, devices, per-batch targets, sharding between ranks);
* :mod:`~captum_higher_order.dataset.stats`: the running statistics;
* :mod:`~captum_higher_order.dataset.checkpoint`: fingerprint and files;
* :mod:`~captum_higher_order.dataset.distributed`: combining the ranks;
* :mod:`~captum_higher_order.dataset.result`: :class:`DatasetExplanation`;
* :mod:`~captum_higher_order.dataset.run`: the loop and :func:`explain_dataset`.
"""

from captum_higher_order.dataset.batching import SHARDING, Batch, default_unpack
from captum_higher_order.dataset.checkpoint import CheckpointError
from captum_higher_order.dataset.result import DatasetExplanation, RankedFeature
from captum_higher_order.dataset.run import explain_dataset
from captum_higher_order.dataset.stats import REDUCTIONS

__all__ = [
    "REDUCTIONS",
    "SHARDING",
    "Batch",
    "CheckpointError",
    "DatasetExplanation",
    "RankedFeature",
    "default_unpack",
    "explain_dataset",
]
