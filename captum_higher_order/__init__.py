"""captum-higher-order: higher-order attribution for PyTorch, as a Captum plugin."""

from captum_higher_order.version import __version__

__all__ = ["__version__"]
