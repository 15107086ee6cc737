"""Command lines: evaluate a workdir, sweeps, the report, dataset preparation."""
