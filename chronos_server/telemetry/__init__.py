"""What the server tells its operators: Prometheus metrics (`metrics`, served by `exposition`
on `--metrics-port`) and structured logs (`logs`)."""
