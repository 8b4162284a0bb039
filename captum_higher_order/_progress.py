"""Progress bars: one way to make them, and one switch to show them inside methods.

Long calls (thousands of HVPs, many path points, a dataset) should show signs of
life, but a library must stay silent unless asked. Two ways to ask:

* code that owns a loop makes a bar with :func:`progress_bar` (a no-op object when
  disabled or when ``tqdm`` is missing);
* a caller that wants to see inside a method call wraps it in
  :func:`showing_progress`; the engine and the methods then report their inner
  work (chunks of HVPs, path points, noise passes) through :func:`inner_progress`.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from typing import Any, Iterator, Optional

__all__ = ["ProgressBar", "progress_bar", "showing_progress", "inner_progress"]

_SHOW_INNER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "captum_higher_order_show_inner_progress", default=False
)


class ProgressBar:
    """What the code calls on a bar: ``update(n)``, ``set_postfix_str(s)``, ``close()``.

    This base class is the silent bar; :func:`progress_bar` returns a tqdm bar
    (which has the same methods) when progress is wanted and tqdm is installed.
    """

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(
    total: Optional[int], desc: str, unit: str, enabled: bool = True, leave: bool = False
) -> Any:
    """A tqdm bar on stderr, or a silent :class:`ProgressBar` when ``enabled`` is
    False or tqdm is not installed. Use it as a context manager so it closes."""
    if not enabled:
        return ProgressBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return ProgressBar()
    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave, dynamic_ncols=True
    )


@contextlib.contextmanager
def showing_progress(enabled: bool = True) -> Iterator[None]:
    """Within this block, methods show progress bars for their inner work.

    Examples::

        >>> import torch
        >>> from captum_higher_order._progress import showing_progress
        >>> from captum_higher_order.hessian import hessian
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
        ...                             torch.nn.Linear(4, 1)).eval()
        >>> with showing_progress(False):   # True draws a bar per chunk of HVPs
        ...     h = hessian(model, torch.randn(2, 3))
        >>> h.shape
        torch.Size([2, 3, 3])
    """
    token = _SHOW_INNER.set(enabled)
    try:
        yield
    finally:
        _SHOW_INNER.reset(token)


def inner_progress(total: Optional[int], desc: str, unit: str) -> Any:
    """A bar for a method's inner loop: shown only inside :func:`showing_progress`.

    Bars are shown for loops of more than one step only, so short calls stay quiet."""
    enabled = _SHOW_INNER.get() and (total is None or total > 1)
    return progress_bar(total, desc, unit, enabled=enabled)
