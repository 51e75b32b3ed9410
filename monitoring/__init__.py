"""The counterfactual prober sidecar and the Prometheus/Grafana configuration it ships with."""
