"""Interaction plots in Captum's style.

Captum's visualizers draw input-shaped maps. Higher-order methods return
feature-by-feature matrices ``(F, F)``, region-pair maps and k-way sets; this
package draws them with the same vocabulary as
:func:`captum.attr.visualization.visualize_image_attr`:

- ``sign``: ``"all"``, ``"positive"``, ``"negative"`` or ``"absolute_value"``;
- ``outlier_perc``: the percentage of the largest magnitudes clipped before the
  values are scaled to ``[-1, 1]`` (Captum's cumulative-sum threshold);
- ``plt_fig_axis``: an existing ``(figure, axis)`` to draw into;
- ``use_pyplot``: create the figure with pyplot and ``plt.show()`` it (True), or
  build a bare :class:`matplotlib.figure.Figure` and just return it (False);
- every function returns ``(figure, axis)`` (``(figure, axes)`` for several panels).

Every plot explains itself: maps carry a colorbar whose label gives the sign
convention and the scale (:func:`scale_label`); arcs and edges are coloured by
sign (Captum's green and red) with width and opacity relative to the strongest,
those below :data:`MIN_RELATIVE_STRENGTH` of it left out, and a legend says so;
grid cells are named ``"(row, col)"`` (:func:`grid_cell_names`); ``label=``,
``prediction=`` and ``probability=`` put ``"label 5, predicted 3 (p = 0.62)"``
into titles (:func:`prediction_text`).

Modules: ``matrix`` (:func:`visualize_interaction_matrix`, heat map),
``bars`` (:func:`visualize_top_interactions`, the strongest pairs or k-sets),
``image`` (:func:`visualize_image_interactions`, region pairs linked over an
image), ``graph`` (:func:`visualize_interaction_graph`, features as nodes),
``tokens`` (:func:`plot_token_interactions`, :func:`visualize_token_arcs`),
``side_by_side`` (:func:`visualize_side_by_side`, an input next to several
precomputed maps), ``ranking`` (:func:`top_interactions`, the ranking they
share), ``_arcs`` (how arcs encode a score) and ``_common`` (conversion,
Captum's sign and outlier rules, labels).
"""

from captum_higher_order.visualization._arcs import MIN_RELATIVE_STRENGTH
from captum_higher_order.visualization._common import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    SIGNS,
    grid_cell_names,
    interaction_strength,
    normalize_values,
    prediction_text,
    scale_label,
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
from captum_higher_order.visualization.tokens import (
    plot_token_interactions,
    visualize_token_arcs,
)

__all__ = [
    "MIN_RELATIVE_STRENGTH",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "SIGNS",
    "grid_cell_names",
    "interaction_strength",
    "normalize_values",
    "plot_token_interactions",
    "prediction_text",
    "scale_label",
    "top_interactions",
    "visualize_image_interactions",
    "visualize_interaction_graph",
    "visualize_interaction_matrix",
    "visualize_side_by_side",
    "visualize_side_by_side_grid",
    "visualize_token_arcs",
    "visualize_top_interactions",
]
