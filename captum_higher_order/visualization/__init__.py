"""Interaction plots in Captum's style.

Captum's visualizers draw input-shaped maps. Higher-order methods return
feature-by-feature matrices ``(F, F)``, region-pair maps and k-way sets; this
module draws them with the same vocabulary as
:func:`captum.attr.visualization.visualize_image_attr`:

- ``sign``: ``"all"``, ``"positive"``, ``"negative"`` or ``"absolute_value"``;
- ``outlier_perc``: the percentage of the largest magnitudes clipped before the
  values are scaled to ``[-1, 1]`` (Captum's cumulative-sum threshold);
- ``plt_fig_axis``: an existing ``(figure, axis)`` to draw into;
- ``use_pyplot``: create the figure with pyplot and ``plt.show()`` it (True), or
  build a bare :class:`matplotlib.figure.Figure` and just return it (False);
- every function returns ``(figure, axis)``.

Functions: :func:`visualize_interaction_matrix` (heat map),
:func:`visualize_top_interactions` (bars of the strongest pairs or k-sets),
:func:`visualize_image_interactions` (region pairs linked over an image),
:func:`visualize_interaction_graph` (features as nodes, interactions as edges)
and :func:`visualize_side_by_side` (an input next to several precomputed maps).
:func:`top_interactions` is the ranking they share.
"""

from captum_higher_order.visualization._common import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    SIGNS,
    interaction_strength,
    normalize_values,
)
from captum_higher_order.visualization.bars import visualize_top_interactions
from captum_higher_order.visualization.graph import visualize_interaction_graph
from captum_higher_order.visualization.image import visualize_image_interactions
from captum_higher_order.visualization.matrix import visualize_interaction_matrix
from captum_higher_order.visualization.ranking import top_interactions
from captum_higher_order.visualization.side_by_side import (
    visualize_side_by_side,
    visualize_side_by_side_grid,
)

__all__ = [
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "SIGNS",
    "interaction_strength",
    "normalize_values",
    "top_interactions",
    "visualize_image_interactions",
    "visualize_interaction_graph",
    "visualize_interaction_matrix",
    "visualize_side_by_side",
    "visualize_side_by_side_grid",
    "visualize_top_interactions",
]
