"""Benchmark training regimes for dense retrievers: what each buys and what it costs."""

__version__ = "0.1.0"
