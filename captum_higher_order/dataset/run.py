"""The run loop of :func:`explain_dataset`: batches in, running statistics,
sync rounds with the other ranks and checkpoint writes, the result out.

Every rank iterates its data; at every ``checkpoint_every`` batches and at the
end, all ranks meet in a sync round (one ``all_gather_object`` of small headers,
then the ``all_reduce`` of the statistics); rank 0 writes the checkpoint. A rank
that fails announces its error in the next round, so the others raise instead
of waiting for it forever.
"""

from __future__ import annotations

import json
import os
from itertools import chain
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order._progress import progress_bar
from captum_higher_order.dataset.batching import (
    SHARDING,
    Batch,
    batch_size,
    batch_target,
    check_target_spec,
    default_unpack,
    inputs_tuple,
    read_batch,
    shard_mode,
    to_device,
)
from captum_higher_order.dataset.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    DataStream,
    fingerprint,
    load_checkpoint,
    remove_stale_temporaries,
    write_checkpoint,
)
from captum_higher_order.dataset.distributed import Dist, _RemoteFailure, combine, gather_objects
from captum_higher_order.dataset.result import DatasetExplanation
from captum_higher_order.dataset.stats import REDUCTIONS, RunningStats, SetStats, as_ranking

__all__ = ["explain_dataset"]

_END = object()

Stats = Union[RunningStats, SetStats]


class _Run:
    """One call of :func:`explain_dataset`: the loop, its sync rounds and files."""

    def __init__(
        self, method: Any, reduce: str, target: Any, attribute_kwargs: Dict[str, Any],
        checkpoint: Optional[str], checkpoint_every: int, device: Optional[torch.device],
        unpack: Callable[[Any], Batch], ctx: Dist, shard: str, kind: Optional[str],
    ) -> None:
        self.method, self.reduce, self.target = method, reduce, target
        self.kwargs, self.checkpoint, self.every = attribute_kwargs, checkpoint, checkpoint_every
        self.device, self.unpack, self.ctx, self.shard, self.kind = device, unpack, ctx, shard, kind
        self.stats: Stats = RunningStats(reduce)
        self.fingerprint: Dict[str, Any] = {}
        self.stream: Optional[DataStream] = None  # with a checkpoint: the data's record
        self.sample_shapes: Optional[Tuple[Tuple[int, ...], ...]] = None
        self.result_shapes: Optional[List[Tuple[int, ...]]] = None
        self.is_tuple = False
        self.in_collective = False

    # ---- one batch
    def process(self, batch: Batch, index: int) -> None:
        batch = Batch(
            to_device(batch.inputs, self.device), to_device(batch.labels, self.device),
            to_device(batch.additional_forward_args, self.device),
        )
        size = batch_size(batch, index)
        if size == 0:
            return
        self._check_input_shapes(batch, index)
        target = batch_target(self.target, self.method, batch, size, index)
        kwargs = dict(self.kwargs)
        if batch.additional_forward_args is not None:
            kwargs["additional_forward_args"] = batch.additional_forward_args
        result = self.method.attribute(batch.inputs, target=target, **kwargs)
        ranking = as_ranking(result)
        if ranking is not None:
            self._set_stats(ranking, size, index).update(*ranking)
        else:
            self._dense_stats(index).update(self._check_result(result, size, index))

    def _check_input_shapes(self, batch: Batch, index: int) -> None:
        shapes = tuple(tuple(x.shape[1:]) for x in inputs_tuple(batch.inputs))
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
                "results (a Tensor or a tuple of Tensors with the batch in dim 0) and "
                "rankings with `indices` and `scores`. Drop options that return "
                "convergence deltas or other extras."
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

    def _dense_stats(self, index: int) -> RunningStats:
        if isinstance(self.stats, SetStats):
            raise ValueError(
                f"Batch {index}: {type(self.method).__name__}.attribute returned a dense "
                "result after earlier batches gave rankings; every batch must give the same."
            )
        return self.stats

    def _set_stats(self, ranking: Tuple[Tensor, Tensor], size: int, index: int) -> SetStats:
        """The sparse statistics, checking one batch's ranking against them."""
        indices, scores = ranking
        name = type(self.method).__name__
        if (indices.dim() != 3 or indices.is_floating_point() or scores.dim() != 2
                or tuple(scores.shape) != tuple(indices.shape[:2]) or indices.shape[0] != size):
            raise ValueError(
                f"Batch {index}: {name}.attribute returned a ranking with indices "
                f"{tuple(indices.shape)} and scores {tuple(scores.shape)} for {size} "
                "samples; explain_dataset needs integer indices (B, k, order) and "
                "scores (B, k)."
            )
        if self.kind is not None:
            raise ValueError(
                f"kind={self.kind!r} describes dense results, but {name}.attribute "
                "returns rankings (indices and scores per sample); leave `kind` unset."
            )
        order = int(indices.shape[2])
        if isinstance(self.stats, RunningStats):
            if self.stats.count:
                raise ValueError(
                    f"Batch {index}: {name}.attribute returned a ranking after earlier "
                    "batches gave dense results; every batch must give the same."
                )
            self.stats = SetStats(self.reduce, order)
        if self.stats.order != order:
            raise ValueError(
                f"Batch {index}: {name}.attribute ranked sets of {order} features, "
                f"earlier batches sets of {self.stats.order}; keep `order` fixed."
            )
        return self.stats

    # ---- sync rounds (checkpoints and the end)
    def sync(self, index: int, final: bool, error: Optional[str] = None) -> Stats:
        """Combine the ranks' statistics; the writer saves them. Every rank calls
        this at its checkpoint indices and at the end; a rank that is done (or
        failed) keeps answering rounds until every rank is done."""
        ctx = self.ctx
        if not ctx.enabled:
            combined = self.stats.copy()
            self._write(combined, index, final, [self._record(final)])
            return combined
        while True:
            # Pre-sharded ranks read different data: each one's record is kept.
            record = self._record(final) if self.shard == "none" else None
            header = {"final": final, "index": index, "spec": self.stats.spec,
                      "tuple": self.is_tuple, "error": error, "record": record}
            self.in_collective = True
            headers = gather_objects(ctx, header)
            failed = [(r, h["error"]) for r, h in enumerate(headers) if h["error"]]
            if failed:
                self.in_collective = False
                if error is not None:
                    return self.stats  # the caller re-raises its own error
                rank, message = failed[0]
                raise _RemoteFailure(f"explain_dataset failed on rank {rank}: {message}")
            combined = self._combine(headers)
            self.in_collective = False
            if ctx.rank == 0:
                records = ([h["record"] for h in headers] if self.shard == "none"
                           else [self._record(final)])
                self._write(combined, max(h["index"] for h in headers),
                            all(h["final"] for h in headers), records)
            if all(h["final"] for h in headers) or not final:
                return combined
            # This rank is done but others are at a checkpoint: answer the round.

    def _combine(self, headers: List[Dict[str, Any]]) -> Stats:
        specs = {json.dumps(h["spec"]) for h in headers if h["spec"] is not None}
        if len(specs) > 1:
            raise ValueError(
                f"Ranks produced results of different shapes ({sorted(specs)}); "
                "every rank must see samples of the same shape."
            )
        self.is_tuple = any(h["tuple"] for h in headers)
        if not specs:
            return RunningStats(self.reduce)
        return combine(self.ctx, self.stats, json.loads(specs.pop()))

    def _record(self, final: bool) -> Optional[Dict[str, Any]]:
        return None if self.stream is None else self.stream.record(final)

    def _write(self, combined: Stats, index: int, final: bool,
               records: List[Optional[Dict[str, Any]]]) -> None:
        if self.checkpoint is None or self.ctx.rank != 0:
            return
        payload = {
            "format": FORMAT_VERSION,
            "fingerprint": json.dumps(self.fingerprint, sort_keys=True),
            "batches": index,
            "complete": final,
            "streams": records,
            "is_tuple": self.is_tuple,
            "stats": combined.state_dict(),
        }
        write_checkpoint(self.checkpoint, payload)

    # ---- start: fingerprint and resume
    def resume(self, first: Optional[Batch], length: Optional[int],
               peek_error: Optional[str]) -> int:
        """Check the checkpoint (rank 0 reads it, every rank learns the outcome);
        this rank's first batch index to process."""
        ctx = self.ctx
        self.fingerprint = fingerprint(
            self.method, self.reduce, self.target, self.kwargs, self.kind, self.shard,
            ctx.world, first,
        )
        error, loaded = None, None
        if ctx.rank == 0 and self.checkpoint is not None:
            remove_stale_temporaries(self.checkpoint)
            try:
                loaded = load_checkpoint(self.checkpoint, self.fingerprint, self.reduce)
            except CheckpointError as err:
                error = err
        streams = None if loaded is None else loaded.streams
        if ctx.enabled:
            streams = self._agree(error, streams, peek_error)
        if error is not None:
            raise error
        if loaded is not None:
            # The resumed totals live on the writer's rank; the others start at zero.
            self.stats, self.is_tuple = loaded.stats.to(self.device), loaded.is_tuple
        if first is not None:
            self.sample_shapes = tuple(tuple(x.shape[1:]) for x in inputs_tuple(first.inputs))
        if self.checkpoint is None:
            return 0
        mine: Dict[str, Any] = {"digests": (), "length": None}
        if streams:
            mine = streams[ctx.rank if self.shard == "none" else 0]
        self.stream = DataStream(self.checkpoint, length, mine["digests"].tolist()
                                 if isinstance(mine["digests"], Tensor) else mine["digests"],
                                 mine["length"])
        return self.stream.start

    def _agree(self, error: Optional[CheckpointError], streams: Optional[List[Any]],
               peek_error: Optional[str]) -> Optional[List[Any]]:
        """One collective: rank 0's checkpoint (or its error) reaches every rank, and
        every rank's first batch, which must agree under round-robin sharding."""
        mine = (streams, None if error is None else str(error),
                self.fingerprint["first_batch"], peek_error)
        everyone = gather_objects(self.ctx, mine)
        streams, message = everyone[0][0], everyone[0][1]
        failed = [(r, e[3]) for r, e in enumerate(everyone) if e[3] is not None]
        if failed:
            if peek_error is not None:
                return streams  # the caller raises its own error
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
        return streams

    # ---- the whole run
    def execute(self, data: Iterable[Any], progress: bool) -> DatasetExplanation:
        """Peek at the first batch (it feeds the fingerprint), resume, loop, combine."""
        ctx = self.ctx
        iterator: Iterator[Any] = iter(data)
        first_raw, first, peek_error = _END, None, None
        try:
            first_raw = next(iterator, _END)
            if first_raw is not _END:
                first = read_batch(self.unpack, first_raw)
        except Exception as err:
            if not ctx.enabled:
                raise
            peek_error, first_raw = err, _END  # announced to the other ranks below
        start = self.resume(
            first, _length(data),
            None if peek_error is None else f"{type(peek_error).__name__}: {peek_error}",
        )
        if peek_error is not None:
            raise peek_error
        stream = iterator if first_raw is _END else chain([first_raw], iterator)
        with progress_bar(_length(data), "explain_dataset", "batch",
                          enabled=progress and ctx.rank == 0, leave=True) as bar:
            index = self.loop(stream, start, first, bar)
            combined = self.sync(index, final=True)
        if combined.count == 0:
            raise ValueError(
                "The dataset gave no samples to explain (empty iterable or only empty "
                "batches); check the DataLoader and, when resuming, that the data did "
                "not shrink."
            )
        return DatasetExplanation.from_stats(
            combined, index, self.is_tuple, self.kind, self.sample_shapes or ((),)
        )

    def loop(self, stream: Iterator[Any], start: int, first: Optional[Batch], bar: Any) -> int:
        """Read every batch (recording it when checkpointing), process this rank's
        from ``start`` on; the number of batches read."""
        ctx, index = self.ctx, 0
        try:
            if self.stream is not None:
                self.stream.check_length()
            for raw in stream:
                mine = index >= start and (self.shard == "none" or index % ctx.world == ctx.rank)
                if mine or self.stream is not None:
                    batch = first if index == 0 and first is not None else read_batch(
                        self.unpack, raw)
                    if self.stream is not None:
                        self.stream.read(index, batch)
                    if mine:
                        self.process(batch, index)
                index += 1
                bar.update(1)
                if self.checkpoint is not None and index > start and index % self.every == 0:
                    self.sync(index, final=False)
            if self.stream is not None:
                self.stream.finish()
        except _RemoteFailure:
            raise
        except Exception as err:
            # A failure inside a collective cannot be announced by another one.
            if ctx.enabled and not self.in_collective:
                self.sync(index, final=True, error=f"{type(err).__name__}: {err}")
            raise
        return index


def _length(data: Any) -> Optional[int]:
    try:
        return len(data)
    except TypeError:
        return None


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
    Sparse per-sample rankings (``CrossDerivatives`` with ``top_k``: indices
    ``(B, k, order)`` and scores ``(B, k)``) aggregate per feature set, a sample
    that did not rank a set counting as zero for it (``kind="sets"``; see
    :meth:`DatasetExplanation.rank`).

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
    the rank that draws it. Under NCCL the statistics are reduced on the current
    CUDA device: call ``torch.cuda.set_device(local_rank)`` first.

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
            exists, the run resumes from it: its settings must match, and the
            batches it covers are read again and must have the same digests
            (and the data the same number of batches); otherwise it is
            created. Default: None
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
            :meth:`DatasetExplanation.rank` reads a dense result. Default: None
            (interaction when one result per sample is ``(F, ..., F)`` and not
            shaped like the input; ``"sets"`` for rankings)
        group (ProcessGroup, optional): The torch.distributed group to use.
            Default: None (the default group)

    Returns:
        DatasetExplanation: ``value``, ``stderr``, ``std``, ``count`` and
        ``rank(k)`` (and ``sets``, ``hits`` for rankings).

    Raises:
        ValueError: empty dataset, inconsistent shapes, ``target="label"`` without
            labels, bad arguments.
        CheckpointError: the checkpoint is corrupt, belongs to another run, or
            was written for other data (a batch differs, or the length).

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
    kwargs = _checked_arguments(
        method, data, reduce, shard, kind, checkpoint_every, target, attribute_kwargs
    )
    compute_device = None if device is None else torch.device(device)
    ctx = Dist.current(group, compute_device)
    run = _Run(
        method, reduce, target, kwargs,
        None if checkpoint is None else os.fspath(checkpoint), int(checkpoint_every),
        compute_device, unpack or default_unpack, ctx, shard_mode(shard, data), kind,
    )
    return run.execute(data, progress)


def _checked_arguments(
    method: Any, data: Any, reduce: str, shard: str, kind: Optional[str],
    checkpoint_every: int, target: Any, attribute_kwargs: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """Refuse bad arguments before any batch is read; the attribute kwargs."""
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
    check_target_spec(target)
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
    return kwargs
