"""The commands (run, reproduce, evaluate, report, compare), a run as named stages, its folder, config."""
