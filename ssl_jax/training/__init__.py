"""Training: a run built once from its config, the compiled step, the loop, checkpoints."""
