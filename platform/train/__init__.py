"""Training: the Ray Train driver and the loop each worker runs."""
