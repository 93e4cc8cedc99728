"""Grafana dashboards of the quota center, written as JSON by ``monitoring.dashboards.build``."""
