"""What operators see: Prometheus metrics and the security event log."""
