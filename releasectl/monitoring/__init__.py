"""Monitoring a served release: metrics sources (Prometheus) for monitor, canary and rollout."""
