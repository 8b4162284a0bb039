"""Metrics for higher-order attributions (Taylor-model quality, interaction detection)."""

from captum_higher_order.metrics.interactions import (
    interaction_auc,
    rank_interactions,
    roc_auc,
)
from captum_higher_order.metrics.taylor import sample_ball, taylor_pmse

__all__ = ["interaction_auc", "rank_interactions", "roc_auc", "sample_ball", "taylor_pmse"]
