"""Monitoring a served release: inference logs (two readers with the same statistics), Prometheus,
the production metric families, alerts, drift and reward collapse, and canary analysis. The log
schema is in docs/logs.md."""
