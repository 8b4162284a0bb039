"""A table of bad inputs per method (issue 16.6), in the spirit of Captum's
generated tests: every row names the method, the bad input, the exception type
it must raise and a phrase the message must contain (what to change).

``python -m tests.fuzz.cases`` runs the table and prints the counts: cases,
clear errors (right type and phrase) and anything still unclear.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Tuple, Type

import torch

import captum_higher_order as cho
from tests.models import mlp, small_cnn, two_input_net

D = torch.float64


class Case(NamedTuple):
    method: str
    name: str
    call: Callable[[], Any]
    error: Type[BaseException]
    phrase: str


def _x(b: int = 4) -> torch.Tensor:
    return torch.randn(b, 6, dtype=D)


_M = mlp(d_out=4)

#: How each method is called with small settings (a model, inputs, kwargs).
METHODS: Dict[str, Callable[..., Any]] = {
    "SecondOrderSaliency": lambda f, x, **k: cho.SecondOrderSaliency(f).attribute(x, **k),
    "GroupSparseSaliency": lambda f, x, **k: cho.GroupSparseSaliency(f).attribute(
        x, **{"max_iter": 5, "search_steps": 2, **k}),
    "CrossDerivatives": lambda f, x, **k: cho.CrossDerivatives(f).attribute(x, **k),
    "IntegratedHessians": lambda f, x, **k: cho.IntegratedHessians(f).attribute(
        x, **{"n_steps": 2, **k}),
    "SmoothHess": lambda f, x, **k: cho.SmoothHess(f).attribute(
        x, **{"n_samples": 4, **k}),
}
MASKED = ("GroupSparseSaliency", "CrossDerivatives", "IntegratedHessians", "SmoothHess")


def _under_inference_mode(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return fn()
    return run


def _inference_model() -> torch.nn.Module:
    with torch.inference_mode():
        return mlp(d_out=4)


_MASK = torch.tensor([0, 0, 1, 1, 2, 2])

#: (name, model, inputs, kwargs, error, phrase), the same for every method.
_COMMON: List[Tuple[str, Any, Callable[[], Any], Dict[str, Any], Type[BaseException], str]] = [
    ("transposed output (C, B)", lambda x: _M(x).T, _x, {"target": 0},
     ValueError, "first sample alone"),
    ("batch-mean output (C,)", lambda x: _M(x).mean(0), _x, {"target": 0},
     ValueError, "first sample alone"),
    ("batch-mean keepdim (1, C)", lambda x: _M(x).mean(0, keepdim=True), _x, {"target": 0},
     ValueError, "for a batch of 4"),
    ("tuple output", lambda x: (_M(x), None), _x, {"target": 0}, ValueError, "returned a tuple"),
    ("dict output", lambda x: {"logits": _M(x)}, _x, {"target": 0}, ValueError, "returned a dict"),
    ("0-d output", lambda x: _M(x).sum(), _x, {"target": 0}, ValueError, "scalar"),
    ("3-d output", lambda x: _M(x).unsqueeze(-1), _x, {"target": 0}, ValueError, "(B,) or (B, C)"),
    ("NaN output", lambda x: _M(x) * float("nan"), _x, {"target": 0}, ValueError, "NaN or Inf"),
    ("un-batched input", _M, lambda: torch.randn(6, dtype=D), {"target": 0},
     ValueError, "unsqueeze(0)"),
    ("float32 input, float64 model", _M, lambda: _x().float(), {"target": 0},
     ValueError, "torch.float32 but the model's parameters are torch.float64"),
    ("inputs as a list", _M, lambda: [_x()], {"target": 0}, TypeError, "tuple(inputs)"),
    ("integer inputs", _M, lambda: torch.ones(4, 6, dtype=torch.long), {"target": 0},
     TypeError, "embedding"),
    ("NaN input", _M, lambda: _x().fill_(float("nan")), {"target": 0}, ValueError, "NaN or Inf"),
    ("empty batch", _M, lambda: torch.zeros(0, 6, dtype=D), {"target": 0},
     ValueError, "batch size 0"),
    ("scalar input", _M, lambda: torch.tensor(1.0, dtype=D), {"target": 0},
     ValueError, "batch in dim 0"),
    ("target out of range", _M, _x, {"target": 9}, ValueError, "valid 0..3"),
    ("negative target", _M, _x, {"target": -1}, ValueError, "valid 0..3"),
    ("target list of wrong length", _M, _x, {"target": [0, 1]}, ValueError, "batch of 4"),
    ("float target tensor", _M, _x, {"target": torch.tensor([0.0] * 4)}, TypeError,
     "integer class indices"),
    ("bool target", _M, _x, {"target": True}, TypeError, "not a bool"),
    ("target as a string", _M, _x, {"target": "cat"}, TypeError, "`target` must be"),
    ("no target for C > 1", _M, _x, {"objective": "output"}, ValueError, "pass `target`"),
    ("unknown objective", _M, _x, {"target": 0, "objective": "logits"}, ValueError,
     "Unknown objective"),
    ("under torch.inference_mode()", _M, _x, {"target": 0}, ValueError, "inference_mode"),
    ("model made under inference_mode", "inference_model", _x, {"target": 0}, ValueError,
     "inference tensors"),
    ("batch-norm in training mode", "train_bn", _x, {"target": 0}, ValueError, "model.eval()"),
    ("forward not callable", "not_callable", _x, {"target": 0}, TypeError, "callable"),
]


def _train_bn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4)).double().train()


def _model(spec: Any) -> Any:
    if spec == "inference_model":
        return _inference_model()
    if spec == "train_bn":
        return _train_bn()
    if spec == "not_callable":
        return 3
    return spec


def _common_cases() -> List[Case]:
    out = []
    for method, run in METHODS.items():
        for name, model, make_x, kwargs, error, phrase in _COMMON:
            def call(run=run, model=model, make_x=make_x, kwargs=kwargs, name=name) -> Any:
                f = _model(model)
                fn = lambda: run(f, make_x(), **kwargs)  # noqa: E731
                return _under_inference_mode(fn)() if "inference_mode()" in name else fn()
            out.append(Case(method, name, call, error, phrase))
    return out


def _mask_cases() -> List[Case]:
    rows = [
        ("feature_mask as a list", [_MASK], TypeError, "tuple(feature_mask)"),
        ("float feature_mask", _MASK.double(), TypeError, "integer tensor of group ids"),
        ("negative feature_mask ids", -_MASK - 1, ValueError, "non-negative"),
        ("feature_mask of wrong shape", torch.zeros(5, dtype=torch.long), ValueError,
         "does not broadcast"),
        ("two masks for one input", (_MASK, _MASK), ValueError, "one mask per input"),
        ("feature_mask as a dict", {"a": _MASK}, TypeError, "tuple of Tensors"),
    ]
    out = []
    for method in MASKED:
        for name, mask, error, phrase in rows:
            def call(method=method, mask=mask) -> Any:
                return METHODS[method](_M, _x(), target=0, feature_mask=mask)
            out.append(Case(method, name, call, error, phrase))
    return out


def _cnn_x() -> torch.Tensor:
    return torch.randn(3, 1, 8, 8, dtype=D)


class _Wrapped(torch.nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.net = small_cnn()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(self.net(x))


def _taylor(fn: Callable[[torch.Tensor], Any], **kwargs: Any) -> Callable[[], Any]:
    def call() -> Any:
        model = _Wrapped(fn)
        return cho.TaylorCAM(model, model.net.conv2).attribute(_cnn_x(), **kwargs)
    return call


def _taylor_cases() -> List[Case]:
    ident = lambda o: o  # noqa: E731
    rows = [
        ("transposed output (C, B)", _taylor(lambda o: o.T, target=0), ValueError,
         "first sample alone"),
        ("batch-mean output (C,)", _taylor(lambda o: o.mean(0), target=0), ValueError,
         "first sample alone"),
        ("0-d output", _taylor(lambda o: o.sum(), target=0), ValueError, "scalar"),
        ("tuple output", _taylor(lambda o: (o,), target=0), TypeError, "must return a Tensor"),
        ("chunk_size=0", _taylor(ident, target=0, chunk_size=0), ValueError, "`chunk_size`"),
        ("target out of range", _taylor(ident, target=7), ValueError, "valid 0..2"),
        ("under torch.inference_mode()", _under_inference_mode(_taylor(ident, target=0)),
         ValueError, "inference_mode"),
        ("unknown objective", _taylor(ident, target=0, objective="logits"), ValueError,
         "Unknown objective"),
    ]
    return [Case("TaylorCAM", n, c, e, p) for n, c, e, p in rows]


def _parameter_cases() -> List[Case]:
    x = _x
    rows: List[Tuple[str, str, Callable[[], Any], Type[BaseException], str]] = [
        ("CrossDerivatives", "chunk_size=0",
         lambda: METHODS["CrossDerivatives"](_M, x(), target=0, chunk_size=0),
         ValueError, "`chunk_size`"),
        ("CrossDerivatives", "chunk_size=0, order 3",
         lambda: METHODS["CrossDerivatives"](_M, x(), target=0, order=3, top_k=2, chunk_size=0),
         ValueError, "`chunk_size`"),
        ("CrossDerivatives", "order=1",
         lambda: METHODS["CrossDerivatives"](_M, x(), target=0, order=1), ValueError, "order"),
        ("CrossDerivatives", "top_k=0",
         lambda: METHODS["CrossDerivatives"](_M, x(), target=0, order=3, top_k=0),
         ValueError, "top_k"),
        ("IntegratedHessians", "n_steps=0",
         lambda: METHODS["IntegratedHessians"](_M, x(), target=0, n_steps=0),
         ValueError, "n_steps"),
        ("IntegratedHessians", "internal_batch_size=0",
         lambda: METHODS["IntegratedHessians"](_M, x(), target=0, internal_batch_size=0),
         ValueError, "internal_batch_size"),
        ("IntegratedHessians", "baselines as a list",
         lambda: METHODS["IntegratedHessians"](_M, x(), target=0, baselines=[0.0]),
         TypeError, "`baselines`"),
        ("SmoothHess", "n_samples=0",
         lambda: METHODS["SmoothHess"](_M, x(), target=0, n_samples=0),
         ValueError, "n_samples"),
        ("SmoothHess", "batch_size=0",
         lambda: METHODS["SmoothHess"](_M, x(), target=0, batch_size=0),
         ValueError, "batch_size"),
        ("SmoothHess", "sigma=0",
         lambda: METHODS["SmoothHess"](_M, x(), target=0, sigma=0.0), ValueError, "sigma"),
        ("SecondOrderSaliency", "lambda2=0",
         lambda: METHODS["SecondOrderSaliency"](_M, x(), target=0, lambda2=0.0),
         ValueError, "lambda2"),
        ("GroupSparseSaliency", "lambda1=-1",
         lambda: METHODS["GroupSparseSaliency"](_M, x(), target=0, lambda1=-1.0),
         ValueError, "lambda1"),
        ("SecondOrderSaliency", "tuple inputs, extra arg of wrong batch",
         lambda: cho.SecondOrderSaliency(two_input_net()).attribute(
             (torch.randn(2, 3, dtype=D), torch.randn(2, 2, 2, dtype=D)), target=0,
             additional_forward_args=(torch.ones(3, dtype=D),)),
         ValueError, "batch"),
    ]
    return [Case(m, n, c, e, p) for m, n, c, e, p in rows]


def all_cases() -> List[Case]:
    return _common_cases() + _mask_cases() + _taylor_cases() + _parameter_cases()


def outcome(case: Case) -> str:
    """'clear' (right type and phrase), 'no error', or the unclear error."""
    try:
        case.call()
    except case.error as err:
        if case.phrase in str(err):
            return "clear"
        return f"{type(err).__name__}: {str(err)[:160]}"
    except Exception as err:  # noqa: BLE001 - the point is to see it
        return f"{type(err).__name__}: {str(err)[:160]}"
    return "no error"


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    cases = all_cases()
    unclear = []
    for case in cases:
        torch.manual_seed(0)
        got = outcome(case)
        if got != "clear":
            unclear.append((case, got))
    methods = sorted({c.method for c in cases})
    print(f"cases: {len(cases)} over {len(methods)} methods; clear errors: "
          f"{len(cases) - len(unclear)}; still unclear: {len(unclear)}")
    for case, got in unclear:
        print(f"  {case.method} / {case.name}: {got}")


if __name__ == "__main__":
    main()
