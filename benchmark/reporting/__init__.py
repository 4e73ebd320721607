"""What a run writes: tables, the claims' verdicts, report.md, plots, model cards, the manifest."""
