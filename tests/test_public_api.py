"""The public names import from the package root, and every method is a Captum
Attribution whose attribute() NoiseTunnel can unwrap."""

import inspect

from captum.attr import Attribution, GradientAttribution, LayerAttribution

import captum_higher_order as cho

METHODS = [
    cho.SecondOrderSaliency,
    cho.GroupSparseSaliency,
    cho.SmoothHess,
    cho.CrossDerivatives,
    cho.TaylorCAM,
    cho.DTDRootCheck,
    cho.IntegratedHessians,
]


def test_all_names_resolve():
    missing = [name for name in cho.__all__ if not hasattr(cho, name)]
    assert not missing


def test_methods_are_captum_attributions_with_wrapped_attribute():
    for cls in METHODS:
        assert issubclass(cls, Attribution), cls
        assert hasattr(cls.attribute, "__wrapped__"), f"{cls.__name__}.attribute lacks log_usage"
        params = list(inspect.signature(cls.attribute.__wrapped__).parameters)
        assert params[:2] == ["self", "inputs"], (cls.__name__, params)
        assert "target" in params and "additional_forward_args" in params, cls.__name__
    assert issubclass(cho.TaylorCAM, LayerAttribution)
    assert issubclass(cho.TaylorCAM, GradientAttribution)


def test_docstrings_have_examples_and_args():
    for cls in METHODS:
        doc = inspect.getdoc(cls.attribute) or ""
        cls_doc = inspect.getdoc(cls) or ""
        assert "Args:" in doc + cls_doc, cls.__name__
        assert "Examples::" in doc + cls_doc, cls.__name__
