"""Metrics for higher-order attributions (Taylor-model quality, interaction detection)."""
