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

Runs survive interruption: with ``checkpoint=PATH`` the partial statistics and
the number of batches done are written atomically (temporary file, then
``os.replace``) every ``checkpoint_every`` batches, with a fingerprint of the
method, the model's weights, the settings and the first batch; a rerun with the
same path resumes and gives the same result as an uninterrupted run. A
checkpoint that is corrupt or was written for another configuration is refused
with :class:`CheckpointError` and never overwritten.

When ``torch.distributed`` is initialised (``torchrun --nproc_per_node=N``),
every rank takes a shard of the batches, accumulates locally, and the ranks
combine with ``all_reduce`` (sums, maxima and the between-rank variance term) at
every checkpoint and at the end. Rank 0 writes the checkpoint; every rank gets
the combined result. Works with ``gloo`` (CPU) and ``nccl`` (GPU).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from itertools import chain
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import TensorOrTuple, find_module, run_forward

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

#: Streaming reductions over samples (see the module docstring).
REDUCTIONS = ("mean", "mean_abs", "rms", "max_abs")

#: How batches are split between ranks under ``torch.distributed``:
#: ``"batch"``: rank ``r`` of ``W`` takes the batches whose index ``i`` (position
#: in the iterable) has ``i % W == r``; every rank iterates the full iterable, so
#: it must yield the same batches in the same order on every rank.
#: ``"none"``: the data are already sharded per rank (a DataLoader with a
#: ``DistributedSampler``); every rank processes every batch it is given.
#: ``"auto"``: ``"none"`` for a DataLoader whose sampler is a
#: ``DistributedSampler``, ``"batch"`` otherwise.
SHARDING = ("auto", "batch", "none")

_MAGIC = b"CHO-XDS1"  # file signature of explain_dataset checkpoints, version 1
_FORMAT_VERSION = 1
_END = object()


class CheckpointError(ValueError):
    """A checkpoint is corrupt or was written for a different run."""


class RankedFeature(NamedTuple):
    """One entry of :meth:`DatasetExplanation.rank`."""

    #: Feature indices: ``(i, j)`` for a pair, ``(i, j, k)`` for a triple, the
    #: index into the per-sample map for first-order maps (prefixed by the input
    #: position for tuple results).
    features: Tuple[int, ...]
    #: The aggregated value.
    value: float
    #: Its standard error across samples (NaN for ``"max_abs"``).
    stderr: float
    #: Feature names for ``features`` when ``feature_names`` were given.
    names: Optional[Tuple[str, ...]] = None


class Batch(NamedTuple):
    """One batch as :func:`explain_dataset` sees it."""

    inputs: TensorOrTuple
    labels: Optional[Tensor] = None
    additional_forward_args: Any = None


# --------------------------------------------------------------------------- batches


_INPUT_KEYS = ("inputs", "input", "x")
_LABEL_KEYS = ("labels", "label", "targets", "target", "y")


def default_unpack(batch: Any) -> Batch:
    """Split what a DataLoader or iterable yields into inputs, labels, extra args.

    * a Tensor: the inputs;
    * a tuple or list ``(inputs,)``, ``(inputs, labels)`` or
      ``(inputs, labels, additional_forward_args)``, where ``inputs`` is a
      Tensor or a tuple of Tensors (models with several inputs nest them:
      ``((x1, x2), y)``) and ``labels`` may be None;
    * a dict with an ``"inputs"`` (or ``"input"``, ``"x"``) entry and optional
      ``"labels"`` (``"label"``, ``"targets"``, ``"target"``, ``"y"``) and
      ``"additional_forward_args"``.

    Anything else: pass ``unpack=`` to :func:`explain_dataset`.
    """
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, Tensor):
        return Batch(batch)
    if isinstance(batch, dict):
        inputs = next((batch[k] for k in _INPUT_KEYS if k in batch), None)
        if inputs is None:
            raise ValueError(
                f"A dict batch needs an 'inputs' entry, got keys {sorted(batch)}; "
                "pass `unpack=` to explain_dataset for other layouts."
            )
        labels = next((batch[k] for k in _LABEL_KEYS if k in batch), None)
        return Batch(_as_inputs(inputs), labels, batch.get("additional_forward_args"))
    if isinstance(batch, (tuple, list)):
        if 1 <= len(batch) <= 3:
            parts = list(batch) + [None] * (3 - len(batch))
            return Batch(_as_inputs(parts[0]), parts[1], parts[2])
        raise ValueError(
            f"A batch with {len(batch)} elements is ambiguous: batches are "
            "(inputs,), (inputs, labels) or (inputs, labels, additional_forward_args); "
            "nest several input tensors as a tuple, ((x1, x2), y), or pass `unpack=`."
        )
    raise TypeError(
        f"Cannot read a batch of type {type(batch).__name__}: yield a Tensor, a "
        "tuple (inputs, labels) or a dict, or pass `unpack=` to explain_dataset."
    )


def _as_inputs(inputs: Any) -> TensorOrTuple:
    if isinstance(inputs, Tensor):
        return inputs
    if isinstance(inputs, (tuple, list)) and inputs and all(
        isinstance(x, Tensor) for x in inputs
    ):
        return tuple(inputs)
    raise TypeError(
        f"Batch inputs must be a Tensor or a tuple of Tensors, got "
        f"{type(inputs).__name__}."
    )


def _inputs_tuple(inputs: TensorOrTuple) -> Tuple[Tensor, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def _batch_size(batch: Batch, index: int) -> int:
    sizes = {int(x.shape[0]) if x.dim() else -1 for x in _inputs_tuple(batch.inputs)}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            f"Batch {index}: every input tensor needs the batch in dim 0 with the "
            f"same size, got shapes {[tuple(x.shape) for x in _inputs_tuple(batch.inputs)]}."
        )
    return sizes.pop()


def _to_device(obj: Any, device: Optional[torch.device]) -> Any:
    if device is None:
        return obj
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to_device(o, device) for o in obj]
    return obj


# --------------------------------------------------------------------------- targets


def _forward_func_of(method: Any) -> Optional[Callable[..., Tensor]]:
    func = getattr(method, "forward_func", None)
    if func is None:  # NoiseTunnel and other wrappers
        func = getattr(getattr(method, "attribution_method", None), "forward_func", None)
    return func


def _check_target_spec(target: Any) -> None:
    if isinstance(target, str) and target not in ("label", "predicted"):
        raise ValueError(
            f"target={target!r} is not understood: pass a constant Captum target "
            "(an int), 'label' (use each batch's labels) or 'predicted' (the "
            "model's predicted class)."
        )


def _batch_target(
    target: Any, method: Any, batch: Batch, size: int, index: int
) -> Any:
    if isinstance(target, str) and target == "label":
        labels = batch.labels
        if labels is None:
            raise ValueError(
                f"target='label' but batch {index} has no labels; yield "
                "(inputs, labels) batches or pass a constant target / 'predicted'."
            )
        if not isinstance(labels, Tensor):
            labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(
                f"target='label' needs integer class labels, batch {index} has "
                f"{labels.dtype} labels."
            )
        labels = labels.reshape(-1) if labels.dim() > 1 and labels.numel() == size else labels
        if labels.dim() != 1 or labels.shape[0] != size:
            raise ValueError(
                f"Batch {index} has labels of shape {tuple(labels.shape)} for "
                f"{size} samples; pass one class index per sample."
            )
        return labels.long()
    if isinstance(target, str) and target == "predicted":
        func = _forward_func_of(method)
        if func is None:
            raise ValueError(
                "target='predicted' needs the model: the method has no "
                "`forward_func`; pass a constant target or 'label'."
            )
        args = batch.additional_forward_args
        if args is not None and not isinstance(args, tuple):
            args = (args,)
        with torch.no_grad():
            out = run_forward(func, _inputs_tuple(batch.inputs), args)
        if out.dim() == 1 or (out.dim() == 2 and out.shape[1] == 1):
            return None if out.dim() == 1 else 0
        if out.dim() != 2:
            raise ValueError(
                f"target='predicted' needs outputs of shape (B, C), got "
                f"{tuple(out.shape)}."
            )
        return out.argmax(dim=1)
    return target


# --------------------------------------------------------------------------- statistics


def _transform(values: Tensor, reduce: str) -> Tensor:
    """The per-sample quantity ``q`` whose mean (or max) is aggregated."""
    values = values.detach().to(torch.float64)
    if reduce == "mean":
        return values
    if reduce == "rms":
        return values.square()
    return values.abs()  # mean_abs, max_abs


class _RunningStats:
    """Float64 running statistics of one or several per-sample result tensors.

    For ``mean``/``mean_abs``/``rms``: ``sums[i] = sum_b q_b`` and
    ``m2s[i] = sum_b (q_b - mean)^2``, merged per batch with Chan et al.'s
    pairwise update ``M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b)``.
    For ``max_abs``: ``maxes[i] = max_b |a_b|``.
    """

    def __init__(self, reduce: str) -> None:
        self.reduce = reduce
        self.count = 0
        self.sums: List[Tensor] = []
        self.m2s: List[Tensor] = []
        self.maxes: List[Tensor] = []

    @property
    def spec(self) -> Optional[List[Tuple[int, ...]]]:
        tensors = self.maxes if self.reduce == "max_abs" else self.sums
        return [tuple(t.shape) for t in tensors] if tensors else None

    def update(self, results: Sequence[Tensor]) -> None:
        n_b = int(results[0].shape[0])
        if n_b == 0:
            return
        n_a = self.count
        first = n_a == 0  # (a rank may hold zero placeholders after a sync)
        if first:
            self.sums, self.m2s, self.maxes = [], [], []
        else:  # resumed statistics live on the CPU until the first batch arrives
            self.to(results[0].device)
        for i, values in enumerate(results):
            q = _transform(values, self.reduce)
            if self.reduce == "max_abs":
                batch_max = q.amax(dim=0)
                if first:
                    self.maxes.append(batch_max)
                else:
                    self.maxes[i] = torch.maximum(self.maxes[i], batch_max)
                continue
            s_b = q.sum(dim=0)
            m2_b = (q - s_b / n_b).square().sum(dim=0)
            if first:
                self.sums.append(s_b)
                self.m2s.append(m2_b)
                continue
            delta = s_b / n_b - self.sums[i] / n_a
            self.m2s[i] = self.m2s[i] + m2_b + delta.square() * (n_a * n_b / (n_a + n_b))
            self.sums[i] = self.sums[i] + s_b
        self.count = n_a + n_b

    def merge(self, other: _RunningStats) -> None:
        """Fold another set of statistics (e.g. a resumed checkpoint) into this."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.sums, self.m2s, self.maxes = (
                other.count, list(other.sums), list(other.m2s), list(other.maxes)
            )
            return
        n_a, n_b = self.count, other.count
        for i in range(len(other.maxes)):
            self.maxes[i] = torch.maximum(self.maxes[i], other.maxes[i].to(self.maxes[i]))
        for i in range(len(other.sums)):
            s_b = other.sums[i].to(self.sums[i])
            delta = s_b / n_b - self.sums[i] / n_a
            self.m2s[i] = (
                self.m2s[i] + other.m2s[i].to(self.m2s[i])
                + delta.square() * (n_a * n_b / (n_a + n_b))
            )
            self.sums[i] = self.sums[i] + s_b
        self.count = n_a + n_b

    def zeros_like_spec(self, spec: List[Tuple[int, ...]], device: torch.device) -> None:
        """Give a rank that saw no samples zero tensors of the agreed shapes."""
        def zeros() -> List[Tensor]:
            return [torch.zeros(s, dtype=torch.float64, device=device) for s in spec]

        if self.reduce == "max_abs":
            self.maxes = zeros()
        else:
            self.sums, self.m2s = zeros(), zeros()

    def state_dict(self) -> Dict[str, Any]:
        cpu = [t.detach().cpu() for t in self.sums]
        return {
            "count": self.count,
            "sums": cpu,
            "m2s": [t.detach().cpu() for t in self.m2s],
            "maxes": [t.detach().cpu() for t in self.maxes],
        }

    @classmethod
    def from_state(cls, reduce: str, state: Dict[str, Any]) -> _RunningStats:
        stats = cls(reduce)
        stats.count = int(state["count"])
        stats.sums = list(state["sums"])
        stats.m2s = list(state["m2s"])
        stats.maxes = list(state["maxes"])
        return stats

    def to(self, device: Optional[torch.device]) -> _RunningStats:
        if device is not None:
            self.sums = [t.to(device) for t in self.sums]
            self.m2s = [t.to(device) for t in self.m2s]
            self.maxes = [t.to(device) for t in self.maxes]
        return self


# --------------------------------------------------------------------------- result


def _auto_kind(values: Tuple[Tensor, ...], sample_shapes: Tuple[Tuple[int, ...], ...]) -> str:
    if len(values) != 1:
        return "map"
    shape = tuple(values[0].shape)
    if len(sample_shapes) == 1 and shape == tuple(sample_shapes[0]):
        return "map"
    if len(shape) >= 2 and len(set(shape)) == 1:
        return "interaction"
    return "map"


@dataclass
class DatasetExplanation:
    """The aggregated explanation of a dataset, returned by :func:`explain_dataset`.

    Attributes:
        value (Tensor or tuple[Tensor, ...]): The aggregate per element, float64 on
            the CPU, shaped like one sample's result: ``(F, F)`` for pairwise
            interactions, the input shape for first-order maps (a tuple for
            tuple inputs).
        stderr (Tensor or tuple[Tensor, ...]): Standard error of ``value`` across
            samples: ``std / sqrt(count)`` for ``"mean"`` and ``"mean_abs"``, the
            delta-method ``stderr(mean(a^2)) / (2 rms)`` for ``"rms"``, NaN for
            ``"max_abs"`` (a maximum has no standard error).
        std (Tensor or tuple[Tensor, ...]): Sample standard deviation across
            samples of the aggregated quantity (``a``, ``|a|`` or ``a^2``; NaN for
            ``"max_abs"``).
        count (int): Number of samples aggregated.
        batches (int): Number of batches consumed (positions in the iterable).
        reduce (str): The reduction.
        kind (str): ``"interaction"`` (symmetric ``(F, ..., F)`` results, ranked
            over feature sets) or ``"map"`` (ranked over elements).
    """

    value: TensorOrTuple
    stderr: TensorOrTuple
    std: TensorOrTuple
    count: int
    batches: int
    reduce: str
    kind: str

    @classmethod
    def _from_stats(
        cls, stats: _RunningStats, batches: int, is_tuple: bool, kind: Optional[str],
        sample_shapes: Tuple[Tuple[int, ...], ...],
    ) -> DatasetExplanation:
        n = stats.count
        values, stderrs, stds = [], [], []
        if stats.reduce == "max_abs":
            for m in stats.maxes:
                m = m.detach().cpu()
                nan = torch.full_like(m, math.nan)
                values.append(m)
                stderrs.append(nan)
                stds.append(nan.clone())
        else:
            for s, m2 in zip(stats.sums, stats.m2s):
                s, m2 = s.detach().cpu(), m2.detach().cpu()
                mean = s / n
                std = (m2.clamp_min(0) / (n - 1)).sqrt() if n > 1 else torch.full_like(s, math.nan)
                se = std / math.sqrt(n)
                if stats.reduce == "rms":
                    rms = mean.clamp_min(0).sqrt()
                    # d sqrt(u) = du / (2 sqrt(u)); an all-zero element has no spread.
                    se = torch.where(rms > 0, se / (2 * rms), torch.zeros_like(se))
                    mean = rms
                values.append(mean)
                stderrs.append(se)
                stds.append(std)
        kind = kind or _auto_kind(tuple(values), sample_shapes)

        def pack(ts: List[Tensor]) -> TensorOrTuple:
            return tuple(ts) if is_tuple else ts[0]

        return cls(pack(values), pack(stderrs), pack(stds), n, batches, stats.reduce, kind)

    def rank(
        self,
        k: int = 10,
        *,
        include_diagonal: bool = False,
        feature_names: Optional[Sequence[str]] = None,
    ) -> List[RankedFeature]:
        """The ``k`` strongest entries, by absolute aggregated value.

        For ``kind == "interaction"`` the candidates are feature sets with strictly
        increasing indices ``i < j (< l ...)`` (each unordered pair once; the
        diagonal, pure second derivatives, only with ``include_diagonal=True``,
        then ``i <= j``). For maps every element is a candidate.

        Args:
            k (int, optional): How many entries. Default: 10
            include_diagonal (bool, optional): Also rank repeated indices
                (``(i, i)``) of interaction results. Default: False
            feature_names (sequence of str, optional): Names of the flattened
                features, used to fill :attr:`RankedFeature.names`. Default: None

        Returns:
            list[RankedFeature]: ``(features, value, stderr, names)``, strongest first.
        """
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}.")
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        stderrs = self.stderr if isinstance(self.stderr, tuple) else (self.stderr,)
        entries: List[Tuple[float, Tuple[int, ...], float, float]] = []
        for pos, (val, se) in enumerate(zip(values, stderrs)):
            score = val.abs().to(torch.float64)
            if self.kind == "interaction" and val.dim() >= 2 and len(set(val.shape)) == 1:
                score = torch.where(
                    _ordered_mask(val.shape[0], val.dim(), include_diagonal),
                    score, torch.full_like(score, -math.inf),
                )
            flat = score.reshape(-1)
            top = torch.topk(flat, min(k, flat.numel()))
            for s, idx in zip(top.values.tolist(), top.indices.tolist()):
                if s == -math.inf:
                    continue
                index = tuple(int(i) for i in _unravel(idx, tuple(val.shape)))
                if isinstance(self.value, tuple):
                    index = (pos,) + index
                entries.append((s, index, float(val.reshape(-1)[idx]), float(se.reshape(-1)[idx])))
        entries.sort(key=lambda e: -e[0])
        out = []
        for _, index, entry_value, entry_se in entries[:k]:
            names = None
            if feature_names is not None:
                names = tuple(str(feature_names[i]) for i in index)
            out.append(RankedFeature(index, entry_value, entry_se, names))
        return out

    def as_dict(self) -> Dict[str, Any]:
        """Plain data (tensors, ints, strings) for ``torch.save``."""
        return {
            "value": self.value, "stderr": self.stderr, "std": self.std,
            "count": self.count, "batches": self.batches, "reduce": self.reduce,
            "kind": self.kind,
        }


def _ordered_mask(size: int, order: int, include_diagonal: bool) -> Tensor:
    """Boolean ``(size,) * order`` mask of index tuples i1 < i2 < ... (or <=)."""
    ar = torch.arange(size)
    mask = torch.ones((size,) * order, dtype=torch.bool)
    for d in range(order - 1):
        left = ar.view(*([1] * d), size, *([1] * (order - d - 1)))
        right = ar.view(*([1] * (d + 1)), size, *([1] * (order - d - 2)))
        mask &= (left <= right) if include_diagonal else (left < right)
    return mask


def _unravel(flat_index: int, shape: Tuple[int, ...]) -> List[int]:
    out = []
    for dim in reversed(shape):
        out.append(flat_index % dim)
        flat_index //= dim
    return out[::-1]


# --------------------------------------------------------------------------- fingerprint


def _tensor_digest(t: Tensor) -> str:
    data = t.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(str((tuple(t.shape), str(t.dtype))).encode())
    if data.numel():
        h.update(data.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _module_digest(module: nn.Module) -> str:
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(_tensor_digest(t).encode())
    return h.hexdigest()[:16]


def _describe(obj: Any, depth: int = 0) -> Any:
    """A JSON-able description of a setting, tensors and modules by digest."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, Tensor):
        return f"tensor{tuple(obj.shape)}:{_tensor_digest(obj)}"
    if isinstance(obj, nn.Module):
        return f"module:{_module_digest(obj)}"
    if isinstance(obj, torch.Generator):
        return "generator"
    if isinstance(obj, (tuple, list)):
        return [_describe(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    module = find_module(obj) if callable(obj) else None
    if module is not None:
        return f"{getattr(obj, '__qualname__', type(obj).__qualname__)}:{_module_digest(module)}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if depth < 2 and hasattr(obj, "__dict__"):
        return {"type": type(obj).__qualname__, "config": _describe(vars(obj), depth + 1)}
    return type(obj).__qualname__


def _method_config(method: Any) -> Any:
    config = {k: v for k, v in vars(method).items() if not k.startswith("__")}
    return _describe(config)


def _fingerprint(
    method: Any, reduce: str, target: Any, attribute_kwargs: Dict[str, Any],
    kind: Optional[str], shard: str, world: int, first: Optional[Batch],
) -> Dict[str, Any]:
    fp: Dict[str, Any] = {
        "format": _FORMAT_VERSION,
        "method": f"{type(method).__module__}.{type(method).__qualname__}",
        "method_config": _method_config(method),
        "reduce": reduce,
        "target": _describe(target),
        "attribute_kwargs": _describe(attribute_kwargs),
        "kind": kind,
        # Round-robin shards are a pure function of the batch index, so a run may
        # resume with another world size; pre-sharded data may not.
        "shard": shard if shard == "batch" else f"{shard}:world={world}",
        "first_batch": None if first is None else _describe(
            [first.inputs, first.labels, first.additional_forward_args]
        ),
    }
    return json.loads(json.dumps(fp))  # normalise tuples to lists


# --------------------------------------------------------------------------- checkpoint files


def _write_checkpoint(path: str, payload: Dict[str, Any]) -> None:
    """Write ``payload`` atomically: a temporary file in the same directory,
    fsync, then ``os.replace`` (atomic on POSIX and Windows)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    blob = _MAGIC + hashlib.sha256(data).digest() + data
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_checkpoint(path: str) -> Dict[str, Any]:
    with open(path, "rb") as f:
        blob = f.read()
    header = len(_MAGIC) + 32
    if not blob.startswith(_MAGIC):
        raise CheckpointError(
            f"{path!r} is not an explain_dataset checkpoint (wrong file signature); "
            "it was not touched. Pass another `checkpoint` path or move the file away."
        )
    data = blob[header:]
    if len(blob) < header or hashlib.sha256(data).digest() != blob[len(_MAGIC):header]:
        raise CheckpointError(
            f"Checkpoint {path!r} is corrupt (checksum mismatch, e.g. a truncated "
            "copy); it was not touched. Delete it to start over, or restore a good copy."
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # pragma: no cover - the checksum catches damage first
        raise CheckpointError(f"Checkpoint {path!r} cannot be read: {err}") from err
    if not isinstance(payload, dict) or {"fingerprint", "batches", "stats"} - set(payload):
        raise CheckpointError(f"Checkpoint {path!r} lacks required entries; not touched.")
    return payload


def _fingerprint_diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _load_checkpoint(
    path: str, fingerprint: Dict[str, Any], reduce: str
) -> Tuple[int, Optional[Tuple[_RunningStats, bool]]]:
    if not os.path.exists(path):
        return 0, None
    payload = _read_checkpoint(path)
    old = json.loads(payload["fingerprint"])
    diff = _fingerprint_diff(old, fingerprint)
    if diff:
        raise CheckpointError(
            f"Checkpoint {path!r} was written for a different run (differs in: "
            f"{', '.join(diff)}); refusing to resume and leaving it untouched. "
            "Use another `checkpoint` path, or delete the file to start over."
            + (" The first batch differs: the data changed or are shuffled; resuming "
               "needs the same batches in the same order." if "first_batch" in diff else "")
        )
    stats = _RunningStats.from_state(reduce, payload["stats"])
    return int(payload["batches"]), (stats, bool(payload.get("is_tuple", False)))


# --------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    """Who this process is under torch.distributed (world of 1 when not)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    device: torch.device = torch.device("cpu")

    @classmethod
    def current(cls, group: Any) -> _Dist:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        backend = str(dist.get_backend(group)).lower()
        device = torch.device("cpu")
        if "nccl" in backend:
            device = torch.device("cuda", torch.cuda.current_device())
        return cls(dist.get_rank(group), dist.get_world_size(group), group, device)

    @property
    def enabled(self) -> bool:
        return self.world > 1


class _RemoteFailure(RuntimeError):
    """Another rank failed; raised on every healthy rank at the next sync."""


def _combine(ctx: _Dist, local: _RunningStats, spec: List[Tuple[int, ...]]) -> _RunningStats:
    """All-reduce the ranks' statistics: counts, sums and maxima add / max up;
    ``M2 = sum_r [M2_r + n_r (mean_r - mean)^2]`` (within plus between ranks)."""
    import torch.distributed as dist

    if local.spec is None:
        local.zeros_like_spec(spec, ctx.device)
    # Copies on the communication device (CPU for gloo, the rank's GPU for
    # nccl); the local accumulators stay where the results are computed.
    on_device = _RunningStats(local.reduce)
    on_device.count = local.count
    on_device.sums, on_device.m2s, on_device.maxes = (
        list(local.sums), list(local.m2s), list(local.maxes)
    )
    local = on_device.to(ctx.device)
    out = _RunningStats(local.reduce)
    count = torch.tensor([float(local.count)], dtype=torch.float64, device=ctx.device)
    if local.reduce == "max_abs":
        dist.all_reduce(count, group=ctx.group)
        flat = torch.cat([m.reshape(-1) for m in local.maxes])
        dist.all_reduce(flat, op=dist.ReduceOp.MAX, group=ctx.group)
        out.maxes = [p.reshape(s) for p, s in zip(flat.split([math.prod(s) for s in spec]), spec)]
        out.count = int(count.item())
        return out
    sizes = [math.prod(s) for s in spec]
    flat = torch.cat([count] + [s.reshape(-1) for s in local.sums])
    dist.all_reduce(flat, group=ctx.group)
    total = int(flat[0].item())
    sums = [p.reshape(s) for p, s in zip(flat[1:].split(sizes), spec)]
    parts = []
    for s_r, m2_r, s_g in zip(local.sums, local.m2s, sums):
        if local.count == 0 or total == 0:
            parts.append(m2_r.reshape(-1))
            continue
        between = (s_r / local.count - s_g / total).square() * local.count
        parts.append((m2_r + between).reshape(-1))
    m2 = torch.cat(parts)
    dist.all_reduce(m2, group=ctx.group)
    out.count, out.sums = total, sums
    out.m2s = [p.reshape(s) for p, s in zip(m2.split(sizes), spec)]
    return out


def _gather_objects(ctx: _Dist, obj: Any) -> List[Any]:
    """Every rank's ``obj``, in group-rank order."""
    import torch.distributed as dist

    gathered: List[Any] = [None] * ctx.world
    dist.all_gather_object(gathered, obj, group=ctx.group)
    return gathered


# --------------------------------------------------------------------------- runner


def _shard_mode(shard: str, data: Any) -> str:
    if shard != "auto":
        return shard
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(data, DataLoader):
        samplers = [data.sampler, getattr(data.batch_sampler, "sampler", None)]
        if any(isinstance(s, DistributedSampler) for s in samplers):
            return "none"
    return "batch"


def _progress(data: Any, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return None
    try:
        total = len(data)
    except TypeError:
        total = None
    return tqdm(total=total, desc="explain_dataset", unit="batch", dynamic_ncols=True)


class _Run:
    """One call of :func:`explain_dataset`: the loop, its sync rounds and files."""

    def __init__(
        self, method: Any, reduce: str, target: Any, attribute_kwargs: Dict[str, Any],
        checkpoint: Optional[str], checkpoint_every: int, device: Optional[torch.device],
        unpack: Callable[[Any], Batch], ctx: _Dist, shard: str, kind: Optional[str],
    ) -> None:
        self.method, self.reduce, self.target = method, reduce, target
        self.kwargs, self.checkpoint, self.every = attribute_kwargs, checkpoint, checkpoint_every
        self.device, self.unpack, self.ctx, self.shard, self.kind = device, unpack, ctx, shard, kind
        self.stats = _RunningStats(reduce)
        self.fingerprint: Dict[str, Any] = {}
        self.sample_shapes: Optional[Tuple[Tuple[int, ...], ...]] = None
        self.result_shapes: Optional[List[Tuple[int, ...]]] = None
        self.is_tuple = False
        self.in_collective = False

    # ---- one batch
    def process(self, raw: Any, index: int) -> None:
        batch = self.unpack(raw)
        if not isinstance(batch, Batch):
            batch = Batch(*batch)
        batch = Batch(
            _to_device(batch.inputs, self.device), _to_device(batch.labels, self.device),
            _to_device(batch.additional_forward_args, self.device),
        )
        size = _batch_size(batch, index)
        if size == 0:
            return
        self._check_input_shapes(batch, index)
        target = _batch_target(self.target, self.method, batch, size, index)
        kwargs = dict(self.kwargs)
        if batch.additional_forward_args is not None:
            kwargs["additional_forward_args"] = batch.additional_forward_args
        result = self.method.attribute(batch.inputs, target=target, **kwargs)
        self.stats.update(self._check_result(result, size, index))

    def _check_input_shapes(self, batch: Batch, index: int) -> None:
        shapes = tuple(tuple(x.shape[1:]) for x in _inputs_tuple(batch.inputs))
        if self.sample_shapes is None:
            self.sample_shapes = shapes
        elif shapes != self.sample_shapes:
            raise ValueError(
                f"Batch {index} has per-sample input shapes {list(shapes)} but earlier "
                f"batches had {list(self.sample_shapes)}; every batch must hold samples "
                "of the same shape (pad or resize them in the dataset)."
            )

    def _check_result(self, result: Any, size: int, index: int) -> List[Tensor]:
        if isinstance(result, Tensor):
            results = [result]
        elif isinstance(result, tuple) and result and all(isinstance(r, Tensor) for r in result):
            results = list(result)
            self.is_tuple = True
        else:
            raise TypeError(
                f"{type(self.method).__name__}.attribute returned "
                f"{type(result).__name__}; explain_dataset aggregates dense per-sample "
                "results (a Tensor or a tuple of Tensors with the batch in dim 0). "
                "Drop options that return ranked lists or convergence deltas."
            )
        for r in results:
            if r.dim() == 0 or r.shape[0] != size:
                raise ValueError(
                    f"Batch {index}: {type(self.method).__name__}.attribute returned "
                    f"shape {tuple(r.shape)} for {size} samples; explain_dataset needs "
                    "per-sample results with the batch in dim 0."
                )
        shapes = [tuple(r.shape[1:]) for r in results]
        if self.result_shapes is None:
            self.result_shapes = shapes
        elif shapes != self.result_shapes:
            raise ValueError(
                f"Batch {index}: per-sample results have shapes {shapes}, earlier "
                f"batches gave {self.result_shapes}; every batch must give results "
                "of the same shape."
            )
        return results

    # ---- sync rounds (checkpoints and the end)
    def sync(self, index: int, final: bool, error: Optional[str] = None) -> _RunningStats:
        """Combine the ranks' statistics; the writer saves them. Every rank calls
        this at the same checkpoint indices and at the end; a rank that is done
        (or failed) keeps answering rounds until every rank is done."""
        ctx = self.ctx
        if not ctx.enabled:
            combined = _RunningStats(self.reduce)
            combined.merge(self.stats)
            self._write(combined, index)
            return combined
        while True:
            header = {"final": final, "index": index, "spec": self.stats.spec,
                      "tuple": self.is_tuple, "error": error}
            self.in_collective = True
            headers = _gather_objects(ctx, header)
            failed = [(r, h["error"]) for r, h in enumerate(headers) if h["error"]]
            if failed:
                self.in_collective = False
                if error is not None:
                    return self.stats  # the caller re-raises its own error
                rank, message = failed[0]
                raise _RemoteFailure(f"explain_dataset failed on rank {rank}: {message}")
            specs = {json.dumps(h["spec"]) for h in headers if h["spec"] is not None}
            if len(specs) > 1:
                raise ValueError(
                    f"Ranks produced results of different shapes ({sorted(specs)}); "
                    "every rank must see samples of the same shape."
                )
            self.is_tuple = any(h["tuple"] for h in headers)
            round_index = max(h["index"] for h in headers)
            combined = _RunningStats(self.reduce)
            if specs:
                spec = [tuple(s) for s in json.loads(specs.pop())]
                combined = _combine(ctx, self.stats, spec)
            self.in_collective = False
            if ctx.rank == 0:
                self._write(combined, round_index)
            if all(h["final"] for h in headers):
                return combined
            if not final:
                return combined
            # This rank is done but others are at a checkpoint: answer the round.

    def _write(self, combined: _RunningStats, index: int) -> None:
        if self.checkpoint is None or self.ctx.rank != 0:
            return
        payload = {
            "format": _FORMAT_VERSION,
            "fingerprint": json.dumps(self.fingerprint, sort_keys=True),
            "batches": index,
            "is_tuple": self.is_tuple,
            "stats": combined.state_dict(),
        }
        _write_checkpoint(self.checkpoint, payload)

    # ---- start: fingerprint and resume
    def resume(self, first: Optional[Batch], world: int, peek_error: Optional[str]) -> int:
        ctx = self.ctx
        self.fingerprint = _fingerprint(
            self.method, self.reduce, self.target, self.kwargs, self.kind, self.shard,
            world, first,
        )
        start, error, loaded = 0, None, None
        if ctx.rank == 0 and self.checkpoint is not None:
            try:
                start, loaded = _load_checkpoint(self.checkpoint, self.fingerprint, self.reduce)
            except CheckpointError as err:
                error = err
        if ctx.enabled:
            # One collective: rank 0's resume point (or error) and every rank's
            # first batch, which must agree under round-robin sharding.
            mine = (start, None if error is None else str(error),
                    self.fingerprint["first_batch"], peek_error)
            everyone = _gather_objects(ctx, mine)
            start, message = everyone[0][0], everyone[0][1]
            failed = [(r, e[3]) for r, e in enumerate(everyone) if e[3] is not None]
            if failed:
                if peek_error is not None:
                    return start  # the caller raises its own error
                raise _RemoteFailure(
                    f"explain_dataset failed on rank {failed[0][0]}: {failed[0][1]}"
                )
            if message is not None and error is None:
                raise CheckpointError(message)
            firsts = {json.dumps(e[2]) for e in everyone}
            if error is None and self.shard == "batch" and len(firsts) > 1:
                raise ValueError(
                    "The ranks see different first batches, but round-robin sharding "
                    "(batch i goes to rank i % world_size) needs the same batches in "
                    "the same order on every rank: turn off shuffling or seed it, or "
                    "use a DistributedSampler (then every rank keeps its own batches)."
                )
        if error is not None:
            raise error
        if loaded is not None:
            # The resumed totals live on the writer's rank; the others start at zero.
            loaded_stats, self.is_tuple = loaded
            self.stats = loaded_stats.to(self.device)
        if first is not None:
            self.sample_shapes = tuple(tuple(x.shape[1:]) for x in _inputs_tuple(first.inputs))
        return start


def explain_dataset(
    method: Any,
    data: Iterable[Any],
    *,
    target: Any = None,
    reduce: str = "mean_abs",
    attribute_kwargs: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    checkpoint_every: int = 50,
    progress: bool = True,
    device: Optional[Union[str, torch.device]] = None,
    shard: str = "auto",
    unpack: Optional[Callable[[Any], Batch]] = None,
    kind: Optional[str] = None,
    group: Any = None,
) -> DatasetExplanation:
    r"""Aggregate an attribution over a whole dataset, streaming and resumable.

    Global interactions in the sense of Lerman et al. (2021), "Explaining Local,
    Global, And Higher-Order Interactions In Deep Learning" (ICCV): the local
    scores ``a(x)`` of ``method`` are reduced over the samples ``x`` of
    ``data`` with constant memory in the number of samples:

    * ``"mean"``: ``mean_x a(x)``;  ``"mean_abs"``: ``mean_x |a(x)|`` (their
      default for cross derivatives);  ``"rms"``: ``sqrt(mean_x a(x)^2)``;
    * ``"max_abs"``: ``max_x |a(x)|``.

    Accumulators are float64: running sums, and running sums of squared
    deviations for the standard error (Welford 1962; pairwise merging of
    Chan, Golub & LeVeque 1979, also across distributed ranks).

    ``method`` is any object whose ``attribute(inputs, target=..., **kwargs)``
    returns per-sample results with the batch in dim 0: our interaction
    attributions (``(B, F, F)`` or ``(B, G, G)`` with a ``feature_mask``) or any
    Captum attribution (maps shaped like the inputs aggregate element-wise).

    Distributed: when ``torch.distributed`` is initialised (e.g. under
    ``torchrun --nproc_per_node=N``), rank ``r`` of ``W`` processes the batches
    with index ``i % W == r`` (``shard="batch"``; every rank iterates the full
    iterable, which must give the same batches in the same order on every rank,
    so load from a DataLoader without shuffling or with a seeded generator); a
    DataLoader with a ``DistributedSampler`` is already sharded and is consumed
    whole by every rank (``shard="none"``, chosen automatically; note that
    ``DistributedSampler`` pads the dataset by repeating samples unless
    ``drop_last=True``, so a few samples may count twice). Ranks combine with
    ``all_reduce`` at every checkpoint and at the end; rank 0 writes the
    checkpoint; every rank returns the combined result, which equals the
    single-process result up to the order of floating-point summation. For
    stochastic methods pass an integer seed in ``attribute_kwargs`` (e.g.
    ``{"generator": 0}`` for SmoothHess) so a batch's noise does not depend on
    the rank that draws it.

    Args:
        method (Attribution): The attribution, e.g. ``CrossDerivatives(model)``
            or Captum's ``IntegratedGradients(model)``.
        data (iterable): A DataLoader or any iterable of batches; see
            :func:`default_unpack` for the layouts understood (``x``,
            ``(x, y)``, ``(x, y, additional_forward_args)``, dicts).
        target (int, tuple, Tensor, str or None, optional): A constant Captum
            target, ``"label"`` (each batch's labels) or ``"predicted"`` (the
            class the model predicts for each sample, from one no-grad forward).
            Default: None
        reduce (str, optional): One of :data:`REDUCTIONS`. Default: ``"mean_abs"``
        attribute_kwargs (dict, optional): Extra keyword arguments for
            ``method.attribute`` (e.g. ``{"feature_mask": mask, "objective":
            "log_softmax"}``). Default: None
        checkpoint (str or PathLike, optional): File for partial results. If it
            exists, the run resumes from it (its fingerprint must match);
            otherwise it is created. Default: None
        checkpoint_every (int, optional): Batches between checkpoints (positions
            in the iterable). Default: 50
        progress (bool, optional): Show a tqdm progress bar on rank 0 (when tqdm
            is installed). Default: True
        device (str or torch.device, optional): Move every batch's tensors here
            first. Default: None (leave them where they are)
        shard (str, optional): One of :data:`SHARDING`. Default: ``"auto"``
        unpack (callable, optional): Turns one raw batch into a :class:`Batch`.
            Default: :func:`default_unpack`
        kind (str, optional): ``"interaction"`` or ``"map"``: how
            :meth:`DatasetExplanation.rank` reads the result. Default: None
            (interaction when one result per sample is ``(F, ..., F)`` and not
            shaped like the input)
        group (ProcessGroup, optional): The torch.distributed group to use.
            Default: None (the default group)

    Returns:
        DatasetExplanation: ``value``, ``stderr``, ``std``, ``count`` and
        ``rank(k)``.

    Raises:
        ValueError: empty dataset, inconsistent shapes, ``target="label"`` without
            labels, bad arguments.
        CheckpointError: the checkpoint is corrupt or belongs to another run.

    Examples::

        >>> import torch
        >>> from captum.attr import Saliency
        >>> from captum_higher_order.dataset import explain_dataset
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> data = torch.utils.data.DataLoader(
        ...     torch.utils.data.TensorDataset(torch.randn(64, 4),
        ...                                    torch.randint(0, 3, (64,))),
        ...     batch_size=16)
        >>> result = explain_dataset(Saliency(model), data, target="label",
        ...                          progress=False)
        >>> result.value.shape, result.count
        (torch.Size([4]), 64)
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"Unknown reduce {reduce!r}; choose one of {', '.join(REDUCTIONS)}.")
    if shard not in SHARDING:
        raise ValueError(f"Unknown shard {shard!r}; choose one of {', '.join(SHARDING)}.")
    if kind not in (None, "interaction", "map"):
        raise ValueError(f"kind must be None, 'interaction' or 'map', got {kind!r}.")
    if not hasattr(method, "attribute"):
        raise TypeError(
            f"`method` must be an attribution with an `attribute` method, got "
            f"{type(method).__name__}."
        )
    if isinstance(checkpoint_every, bool) or int(checkpoint_every) < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}.")
    _check_target_spec(target)
    kwargs = dict(attribute_kwargs or {})
    for reserved in ("target", "inputs"):
        if reserved in kwargs:
            raise ValueError(
                f"Pass {reserved!r} to explain_dataset itself, not in attribute_kwargs."
            )
    if kwargs.get("return_convergence_delta"):
        raise ValueError(
            "return_convergence_delta=True makes attribute return a pair; "
            "explain_dataset aggregates the attributions only, so drop it."
        )
    if isinstance(data, (Tensor, str, bytes)):
        raise TypeError(
            "`data` must be an iterable of batches (a DataLoader, a list of "
            "tensors or of (inputs, labels) tuples), not a single "
            f"{type(data).__name__}; wrap a tensor in a DataLoader."
        )

    ctx = _Dist.current(group)
    mode = _shard_mode(shard, data)
    run = _Run(
        method, reduce, target, kwargs,
        None if checkpoint is None else os.fspath(checkpoint), int(checkpoint_every),
        None if device is None else torch.device(device), unpack or default_unpack,
        ctx, mode, kind,
    )
    iterator: Iterator[Any] = iter(data)
    first_raw, first, peek_error = _END, None, None
    try:  # the first batch feeds the fingerprint
        first_raw = next(iterator, _END)
        if first_raw is not _END:
            unpacked = run.unpack(first_raw)
            first = unpacked if isinstance(unpacked, Batch) else Batch(*unpacked)
    except Exception as err:
        if not ctx.enabled:
            raise
        peek_error, first_raw = err, _END  # announced to the other ranks below
    start = run.resume(
        first, ctx.world,
        None if peek_error is None else f"{type(peek_error).__name__}: {peek_error}",
    )
    if peek_error is not None:
        raise peek_error
    bar = _progress(data, progress and ctx.rank == 0)
    stream = iterator if first_raw is _END else chain([first_raw], iterator)
    index = 0
    try:
        try:
            for raw in stream:
                if index >= start and (mode == "none" or index % ctx.world == ctx.rank):
                    run.process(raw, index)
                index += 1
                if bar is not None:
                    bar.update(1)
                if run.checkpoint is not None and index > start and index % run.every == 0:
                    run.sync(index, final=False)
        except _RemoteFailure:
            raise
        except Exception as err:
            # A failure inside a collective cannot be announced by another one.
            if ctx.enabled and not run.in_collective:
                run.sync(index, final=True, error=f"{type(err).__name__}: {err}")
            raise
        combined = run.sync(max(index, start), final=True)
    finally:
        if bar is not None:
            bar.close()
    if combined.count == 0:
        raise ValueError(
            "The dataset gave no samples to explain (empty iterable or only empty "
            "batches); check the DataLoader and, when resuming, that the data did "
            "not shrink."
        )
    return DatasetExplanation._from_stats(
        combined, max(index, start), run.is_tuple, kind, run.sample_shapes or ((),)
    )
