"""Ray actors: thin hosts for the core's aggregator and hospital logic."""
