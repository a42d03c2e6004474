"""Training for vla-robot VLAs: typed configs, update strategies, the trainer and the `vla-train` CLI."""
