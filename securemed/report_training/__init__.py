"""Training the report model: config, paired data splits, the per-worker trainer (Ray-free)."""
