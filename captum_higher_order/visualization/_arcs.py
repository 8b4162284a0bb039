"""How arcs and edges encode an interaction score, shared by every plot that draws them.

Colour is the sign (Captum's green for positive, red for negative; one neutral
blue when ``sign="absolute_value"`` drops it), width and opacity grow with
``|score|`` relative to a reference (by default the strongest score drawn).
Scores below :data:`MIN_RELATIVE_STRENGTH` of the reference are not drawn at
all, so a pair scored 1e-7 next to one scored 1.0 does not look like a finding;
the legend says how many were left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from captum_higher_order.visualization._common import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    Ranked,
    _check_sign,
)

#: Arcs and edges whose ``|score|`` is below this fraction of the reference (the
#: strongest) are not drawn.
MIN_RELATIVE_STRENGTH = 0.01

#: Colour of arcs when ``sign="absolute_value"`` (only magnitudes are shown).
ABSOLUTE_COLOR = "#2c7bb6"


@dataclass(frozen=True)
class ArcScale:
    """Maps a score to an arc's width and opacity, relative to ``reference``."""

    reference: float
    max_linewidth: float = 4.0
    min_linewidth: float = 0.5
    min_relative: float = MIN_RELATIVE_STRENGTH

    @classmethod
    def for_ranked(
        cls,
        ranked: Ranked,
        reference: Optional[float] = None,
        max_linewidth: float = 4.0,
        min_relative: float = MIN_RELATIVE_STRENGTH,
    ) -> ArcScale:
        """The scale of a ranked list; ``reference`` defaults to its largest ``|score|``."""
        if not 0 <= min_relative <= 1:
            raise ValueError(f"min_relative_strength must be in [0, 1], got {min_relative}.")
        if reference is None:
            reference = max((abs(v) for _, v in ranked), default=0.0)
        elif not reference >= 0:
            raise ValueError(f"max_strength must be a non-negative number, got {reference}.")
        return cls(float(reference), max_linewidth, min(0.5, max_linewidth), min_relative)

    def relative(self, value: float) -> float:
        """``|value| / reference``, capped at 1 (0 when the reference is 0)."""
        return min(abs(value) / self.reference, 1.0) if self.reference > 0 else 0.0

    def visible(self, value: float) -> bool:
        rel = self.relative(value)
        return rel > 0 and rel >= self.min_relative

    def linewidth(self, value: float) -> float:
        return self.min_linewidth + (self.max_linewidth - self.min_linewidth) * self.relative(value)

    def alpha(self, value: float) -> float:
        return 0.3 + 0.7 * self.relative(value)

    def split(self, ranked: Ranked) -> Tuple[Ranked, int]:
        """The entries to draw and how many were too weak to draw."""
        drawn = [t for t in ranked if self.visible(t[1])]
        return drawn, len(ranked) - len(drawn)


def arc_color(value: float, sign: str) -> str:
    """Green or red by the sign of ``value``; blue when ``sign`` drops the sign."""
    _check_sign(sign)
    if sign == "absolute_value":
        return ABSOLUTE_COLOR
    return POSITIVE_COLOR if value >= 0 else NEGATIVE_COLOR


def add_arc_legend(
    ax: Axes,
    scale: ArcScale,
    drawn: Ranked,
    hidden: int,
    sign: str,
    what: str = "pair",
    colored_by_sign: bool = True,
    note: Optional[str] = None,
    **legend_kwargs: Any,
) -> None:
    """A legend that reads the encoding: both colours, two widths, the dropped count.

    ``note`` is a further line of the legend's title (e.g. what node sizes show).
    """
    handles: List[Any] = []
    if colored_by_sign and sign == "absolute_value":
        handles.append(Line2D([], [], color=ABSOLUTE_COLOR, lw=2, label="|score| (sign dropped)"))
    elif colored_by_sign:
        if sign != "negative":
            handles.append(Line2D([], [], color=POSITIVE_COLOR, lw=2, label=f"positive {what}"))
        if sign != "positive":
            handles.append(Line2D([], [], color=NEGATIVE_COLOR, lw=2, label=f"negative {what}"))
    if scale.reference > 0:
        for fraction, words in ((1.0, "strongest"), (0.25, "25% of it")):
            if fraction >= scale.min_relative:
                handles.append(Line2D(
                    [], [], color="0.35", alpha=0.3 + 0.7 * fraction,
                    lw=scale.min_linewidth + (scale.max_linewidth - scale.min_linewidth) * fraction,
                    label=f"|score| {fraction * scale.reference:.2g} ({words})",
                ))
    if hidden:
        handles.append(Patch(visible=False, label=(
            f"< {scale.min_relative:.0%} of strongest: not drawn ({hidden} here)"
        )))
    if not drawn and not hidden:
        handles.append(Patch(visible=False, label=f"no {what} to draw"))
    if not colored_by_sign:
        title = "colour and width: |score|"
    elif sign == "absolute_value":
        title = "width: |score| (sign dropped)"
    else:
        title = "colour: sign, width: |score|"
    if note:
        title = f"{title}\n{note}"
    # a narrow panel (a column of a side-by-side grid) gets one column of small entries
    narrow = ax.get_position().width * ax.figure.bbox.width / ax.figure.dpi < 3.5
    options: Dict[str, Any] = {
        "loc": "upper center", "bbox_to_anchor": (0.5, -0.02), "fontsize": 6 if narrow else 7,
        "title_fontsize": 6 if narrow else 7, "frameon": False, "ncol": 1 if narrow else 2,
        "handlelength": 2.2,
    }
    options.update(legend_kwargs)
    ax.legend(handles=handles, title=title, **options)


def ranked_reference(values: Sequence[Ranked]) -> float:
    """The largest ``|score|`` over several ranked lists (one shared scale for panels)."""
    return max((abs(v) for ranked in values for _, v in ranked), default=0.0)
