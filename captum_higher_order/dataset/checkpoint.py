"""Checkpoint files of :func:`explain_dataset`: the run's fingerprint, atomic
writes, checked reads, and the refusal of files written for another run.

A checkpoint is ``MAGIC + sha256(data) + data`` where ``data`` is a ``torch.save``
of the partial statistics, the number of batches done and a JSON fingerprint of
everything that determines the result. It is written to a temporary file in the
same directory, fsynced and renamed over the old one (``os.replace`` is atomic
on POSIX and Windows), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import find_module
from captum_higher_order.dataset.batching import Batch
from captum_higher_order.dataset.stats import RunningStats

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "describe",
    "fingerprint",
    "load_checkpoint",
    "read_checkpoint",
    "write_checkpoint",
]

MAGIC = b"CHO-XDS1"  # file signature of explain_dataset checkpoints, version 1
FORMAT_VERSION = 1


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


def _fingerprint_diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def load_checkpoint(
    path: str, expected: Dict[str, Any], reduce: str
) -> Tuple[int, Optional[Tuple[RunningStats, bool]]]:
    """``(batches done, (statistics, is_tuple))`` from ``path``, or ``(0, None)``
    when it does not exist; :class:`CheckpointError` when it belongs to another run."""
    if not os.path.exists(path):
        return 0, None
    payload = read_checkpoint(path)
    old = json.loads(payload["fingerprint"])
    diff = _fingerprint_diff(old, expected)
    if diff:
        raise CheckpointError(
            f"Checkpoint {path!r} was written for a different run (differs in: "
            f"{', '.join(diff)}); refusing to resume and leaving it untouched. "
            "Use another `checkpoint` path, or delete the file to start over."
            + (" The first batch differs: the data changed or are shuffled; resuming "
               "needs the same batches in the same order." if "first_batch" in diff else "")
        )
    stats = RunningStats.from_state(reduce, payload["stats"])
    return int(payload["batches"]), (stats, bool(payload.get("is_tuple", False)))
