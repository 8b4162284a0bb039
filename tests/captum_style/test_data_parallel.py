"""DataParallel and DistributedDataParallel give the single-device result
(Captum's test_data_parallel).

CUDA modes (skipped without a GPU), every entry and algorithm, float64 and
float32, as in Captum:

* ``cpu_cuda``: the model on CPU against a copy on CUDA;
* ``data_parallel_default``: the CUDA model against ``nn.DataParallel`` of it;
* ``ddp``: the CUDA model against ``DistributedDataParallel`` of it (a
  one-process group).

Wrapper modes that need no GPU, one per algorithm (and NoiseTunnel wrapping)
in float64: ``nn.DataParallel`` without devices calls the module itself and
DDP runs on CPU with gloo, so these check that the methods see through the
wrappers (hooks, layer lookup, ``forward_func`` handling) on any machine.

Refused by design: TaylorCAM runs the model on one device and refuses
DataParallel / DDP wrappers with a ValueError saying to pass ``model.module``.
"""

from __future__ import annotations

import copy
import os
import tempfile
from typing import Any, Dict, Iterator, List

import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn

from captum_higher_order import TaylorCAM
from tests.captum_style.config import Refusal
from tests.captum_style.gen import Case, assert_close, assert_magnitude, cases

HAS_CUDA = torch.cuda.is_available()
CUDA_MODES = ("cpu_cuda", "data_parallel_default", "ddp")
CPU_MODES = ("cpu_data_parallel", "cpu_ddp")
WRAPPER_REFUSALS = {
    TaylorCAM: Refusal(ValueError, r"one device: pass the wrapped module \(model.module\)"),
}
DELTA_ATOL = {torch.float64: 1e-10, torch.float32: 2e-6}


@pytest.fixture(scope="module")
def process_group() -> Iterator[None]:
    """A one-process group for DDP (gloo on CPU, NCCL for CUDA tensors)."""
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():
        yield
        return
    path = tempfile.mktemp(prefix="captum_style_ddp_")
    backend = "cpu:gloo,cuda:nccl" if HAS_CUDA else "gloo"
    dist.init_process_group(backend, init_method=f"file://{path}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        if os.path.exists(path):
            os.remove(path)


def _to(value: Any, device: str) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value


def _params() -> List[Any]:
    out: List[Any] = []
    skip_cuda = pytest.mark.skipif(not HAS_CUDA, reason="CUDA not available")
    seen = set()
    for case in cases():
        if case.refusal is not None:
            continue
        for mode in CUDA_MODES:
            out.append(pytest.param(case, mode, id=f"{mode}-{case.id}", marks=[skip_cuda]))
        key = (case.algorithm, case.noise_tunnel)
        if case.dtype == torch.float64 and key not in seen:
            seen.add(key)
            out.extend(pytest.param(case, mode, id=f"{mode}-{case.id}") for mode in CPU_MODES)
    return out


def _pair(case: Case, mode: str):
    """(reference model, compared model, reference args, compared args)."""
    model = case.model
    args = case.args
    if mode.startswith("cpu_"):
        wrapped = (nn.DataParallel(model) if mode == "cpu_data_parallel"
                   else nn.parallel.DistributedDataParallel(model))
        return model, wrapped, model, args, args
    cuda_model = copy.deepcopy(model).cuda()
    cuda_args = _to(args, "cuda")
    if mode == "cpu_cuda":
        return model, cuda_model, cuda_model, args, cuda_args
    if mode == "data_parallel_default":
        return cuda_model, nn.DataParallel(cuda_model), cuda_model, cuda_args, cuda_args
    ddp = nn.parallel.DistributedDataParallel(cuda_model, device_ids=[0])
    return cuda_model, ddp, cuda_model, cuda_args, cuda_args


@pytest.mark.parametrize("case, mode", _params())
def test_data_parallel(case: Case, mode: str, request: pytest.FixtureRequest) -> None:
    if mode.endswith("ddp"):
        request.getfixturevalue("process_group")
    case = case.fresh()
    model_1, model_2, layer_owner_2, args_1, args_2 = _pair(case, mode)
    wrapped = mode not in ("cpu_cuda",)
    refusal = WRAPPER_REFUSALS.get(case.algorithm) if wrapped else None
    method_1 = case.method(model_1)
    if refusal is not None:
        with pytest.raises(refusal.error, match=refusal.match):
            case.call(case.method(model_2, layer_owner_2), **args_2)
        return
    method_2 = case.method(model_2, layer_owner_2)
    extra: Dict[str, Any] = {}
    if method_1.has_convergence_delta():
        extra["return_convergence_delta"] = True
    torch.manual_seed(0)
    result_1 = case.call(method_1, **args_1, **extra)
    torch.manual_seed(0)
    result_2 = case.call(method_2, **args_2, **extra)
    if extra:
        assert_magnitude(case, result_1[0])
        assert_close(result_2[0], result_1[0], case.dp_delta, f"{case.id} {mode}")
        err = float((result_2[1].cpu() - result_1[1].cpu()).abs().max())
        assert err <= DELTA_ATOL[case.dtype], f"{case.id} {mode}: deltas differ by {err:.3g}"
    else:
        assert_magnitude(case, result_1)
        assert_close(result_2, result_1, case.dp_delta, f"{case.id} {mode}")

