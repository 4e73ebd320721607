"""PyTerrier systems and pt.Experiment, significance tests, pairwise accuracy, leakage."""
