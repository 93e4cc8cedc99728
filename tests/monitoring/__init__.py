"""The monitoring mixin: Prometheus rules and their tests, Grafana dashboards, runbooks."""
