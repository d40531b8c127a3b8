"""A small causal language model of clinical notes: built from a config or loaded from a local
folder, fine-tuned with or without DP-SGD, for measuring what such a model memorises."""
