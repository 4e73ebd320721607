"""Cells (a regime at a fraction and seed), the training loop, several processes, validation, tuning."""
