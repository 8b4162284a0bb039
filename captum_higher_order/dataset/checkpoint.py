"""Checkpoint files of :func:`explain_dataset`: the run's fingerprint, atomic
writes, checked reads, and the refusal of files written for another run.

A checkpoint is ``MAGIC + sha256(data) + data`` where ``data`` is a ``torch.save``
of the partial statistics, the number of batches done, a JSON fingerprint of the
settings that determine the result (the method's class and configuration with
the model's weights, ``reduce``, ``target``, ``attribute_kwargs``, ``kind``,
the sharding and the first batch) and a record of the data: a digest of every
batch read so far and the number of batches when known (:class:`DataStream`).
A resumed run re-reads the batches the checkpoint covers, and stops at the
first one whose digest differs, so data that changed anywhere (not only in the
first batch), shrank or grew are refused instead of being mixed in.

It is written to a temporary file in the same directory, fsynced and renamed
over the old one (``os.replace`` is atomic on POSIX and Windows), so a crash
leaves either the old or the new file; a temporary file left behind by a kill
during the write is removed when the next run starts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import find_module
from captum_higher_order.dataset.batching import Batch
from captum_higher_order.dataset.stats import RunningStats, SetStats, stats_from_state

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "DataStream",
    "Resumed",
    "batch_digest",
    "describe",
    "fingerprint",
    "load_checkpoint",
    "read_checkpoint",
    "remove_stale_temporaries",
    "write_checkpoint",
]

MAGIC = b"CHO-XDS1"  # file signature of explain_dataset checkpoints (all formats)
#: 2: every batch's digest and the data's length are recorded (1 had the first
#: batch only, and resumed over changed data).
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint is corrupt or was written for a different run."""


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


def describe(obj: Any, depth: int = 0) -> Any:
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
        return [describe(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    module = find_module(obj) if callable(obj) else None
    if module is not None:
        return f"{getattr(obj, '__qualname__', type(obj).__qualname__)}:{_module_digest(module)}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if depth < 2 and hasattr(obj, "__dict__"):
        return {"type": type(obj).__qualname__, "config": describe(vars(obj), depth + 1)}
    return type(obj).__qualname__


def _method_config(method: Any) -> Any:
    config = {k: v for k, v in vars(method).items() if not k.startswith("__")}
    return describe(config)


def fingerprint(
    method: Any, reduce: str, target: Any, attribute_kwargs: Dict[str, Any],
    kind: Optional[str], shard: str, world: int, first: Optional[Batch],
) -> Dict[str, Any]:
    """What must agree between a checkpoint and the run that resumes it."""
    fp: Dict[str, Any] = {
        "format": FORMAT_VERSION,
        "method": f"{type(method).__module__}.{type(method).__qualname__}",
        "method_config": _method_config(method),
        "reduce": reduce,
        "target": describe(target),
        "attribute_kwargs": describe(attribute_kwargs),
        "kind": kind,
        # Round-robin shards are a pure function of the batch index, so a run may
        # resume with another world size; pre-sharded data may not.
        "shard": shard if shard == "batch" else f"{shard}:world={world}",
        "first_batch": None if first is None else describe(
            [first.inputs, first.labels, first.additional_forward_args]
        ),
    }
    return json.loads(json.dumps(fp))  # normalise tuples to lists


def batch_digest(batch: Batch) -> int:
    """A 64-bit digest of one batch as unpacked (inputs, labels, extra args):
    SHA-256 over the tensors' shapes, dtypes and bytes and the other values."""
    text = json.dumps(describe([batch.inputs, batch.labels, batch.additional_forward_args]))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little", signed=True)


# --------------------------------------------------------------------------- data record


class DataStream:
    """The batches one rank reads, checked against what a checkpoint recorded.

    Args:
        path: The checkpoint (for messages).
        length: ``len(data)`` when the data have a length, else None.
        recorded: The digests of the batches the checkpoint covers (empty when
            starting afresh); the run resumes after them.
        recorded_length: The number of batches the checkpoint's data had, when
            known (the data had a length, or that run read them all).
    """

    def __init__(self, path: str, length: Optional[int],
                 recorded: Sequence[int] = (), recorded_length: Optional[int] = None) -> None:
        self.path, self.length = path, length
        self.recorded, self.recorded_length = list(recorded), recorded_length
        self.digests: List[int] = []

    @property
    def start(self) -> int:
        """Batches already done: the first index to process."""
        return len(self.recorded)

    def check_length(self) -> None:
        """Refuse data whose length differs from the checkpoint's, before any work."""
        if None not in (self.length, self.recorded_length) and self.length != self.recorded_length:
            raise CheckpointError(
                f"Checkpoint {self.path!r} was written for data of {self.recorded_length} "
                f"batches, but the data now have {self.length}; refusing to resume and "
                "leaving it untouched. Pass the same data, or use another `checkpoint` "
                "path (or delete the file) to start over."
            )

    def read(self, index: int, batch: Batch) -> None:
        """Record batch ``index``; refuse it if it differs from the recorded one."""
        digest = batch_digest(batch)
        if index < len(self.recorded) and digest != self.recorded[index]:
            raise CheckpointError(
                f"Checkpoint {self.path!r} was written for other data: batch {index} "
                "differs from the batch at that position when the checkpoint was "
                "written (the data changed, or the loader shuffles); refusing to mix "
                "them and leaving the checkpoint untouched. Pass the same batches in the "
                "same order, or use another `checkpoint` path to start over."
            )
        if self.recorded_length is not None and index >= self.recorded_length:
            raise CheckpointError(
                f"Checkpoint {self.path!r} was written for data of "
                f"{self.recorded_length} batches, but the data go on past that; "
                "refusing to resume and leaving it untouched. Pass the same data, or "
                "use another `checkpoint` path to start over."
            )
        self.digests.append(digest)

    def finish(self) -> None:
        """At the end of the data: refuse data shorter than the checkpoint's."""
        read = len(self.digests)
        expected = max(self.start, self.recorded_length or 0)
        if read < expected:
            raise CheckpointError(
                f"Checkpoint {self.path!r} was written for data of at least {expected} "
                f"batches, but the data ended after {read}; refusing to resume and "
                "leaving it untouched. Pass the same data, or use another `checkpoint` "
                "path to start over."
            )

    def record(self, final: bool) -> Dict[str, Any]:
        """What a checkpoint keeps of this rank's data."""
        length = len(self.digests) if final else self.length
        return {"digests": torch.tensor(self.digests, dtype=torch.long), "length": length}


# --------------------------------------------------------------------------- files


def write_checkpoint(path: str, payload: Dict[str, Any]) -> None:
    """Write ``payload`` atomically: a temporary file in the same directory,
    fsync, then ``os.replace`` (atomic on POSIX and Windows)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    blob = MAGIC + hashlib.sha256(data).digest() + data
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=directory)
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


def _temporary_prefix(path: str) -> str:
    return f".{os.path.basename(path)}."


def remove_stale_temporaries(path: str) -> None:
    """Delete the temporary files that a kill during :func:`write_checkpoint`
    left beside ``path`` (with a warning naming them)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return
    prefix = _temporary_prefix(path)
    stale = sorted(n for n in os.listdir(directory)
                   if n.startswith(prefix) and n.endswith(".tmp"))
    for name in stale:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:  # pragma: no cover - removed by someone else
            pass
    if stale:
        warnings.warn(
            f"Removed {len(stale)} temporary file(s) left beside checkpoint {path!r} by an "
            f"interrupted write ({', '.join(stale)}); the checkpoint itself is intact.",
            stacklevel=3,
        )


def read_checkpoint(path: str) -> Dict[str, Any]:
    """The payload of a checkpoint file, after checking signature and checksum."""
    with open(path, "rb") as f:
        blob = f.read()
    header = len(MAGIC) + 32
    if not blob.startswith(MAGIC):
        raise CheckpointError(
            f"{path!r} is not an explain_dataset checkpoint (wrong file signature); "
            "it was not touched. Pass another `checkpoint` path or move the file away."
        )
    data = blob[header:]
    if len(blob) < header or hashlib.sha256(data).digest() != blob[len(MAGIC):header]:
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


def _differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """One phrase per fingerprint entry that differs: the entry's name, and the
    two values when they are short, else the sub-entries that differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            inner = [k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]
            out.append(f"{key} ({', '.join(map(str, inner))})")
        elif len(json.dumps(a)) + len(json.dumps(b)) <= 80:
            out.append(f"{key} ({json.dumps(a)} in the checkpoint, {json.dumps(b)} now)")
        else:
            out.append(key)
    return out


class Resumed(NamedTuple):
    """What a matching checkpoint holds."""

    batches: int
    stats: Union[RunningStats, SetStats]
    is_tuple: bool
    #: Per rank (one entry under round-robin sharding): ``{"digests", "length"}``.
    streams: List[Dict[str, Any]]


def load_checkpoint(path: str, expected: Dict[str, Any], reduce: str) -> Optional[Resumed]:
    """The checkpoint at ``path``, None when it does not exist;
    :class:`CheckpointError` when it belongs to another run."""
    if not os.path.exists(path):
        return None
    payload = read_checkpoint(path)
    if payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path!r} has format {payload.get('format')}, this version reads "
            f"format {FORMAT_VERSION} (older files did not record every batch, so "
            "resuming could mix in changed data); it was not touched. Delete it to "
            "start over, or use another `checkpoint` path."
        )
    diff = _differences(json.loads(payload["fingerprint"]), expected)
    if diff:
        raise CheckpointError(
            f"Checkpoint {path!r} was written for a different run (differs in: "
            f"{'; '.join(diff)}); refusing to resume and leaving it untouched. "
            "Use another `checkpoint` path, or delete the file to start over."
            + (" The first batch differs: the data changed or are shuffled; resuming "
               "needs the same batches in the same order."
               if any(d.startswith("first_batch") for d in diff) else "")
        )
    return Resumed(int(payload["batches"]), stats_from_state(reduce, payload["stats"]),
                   bool(payload.get("is_tuple", False)), list(payload["streams"]))
