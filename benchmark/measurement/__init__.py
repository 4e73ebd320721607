"""Named phases with wall-clock, CPU and accelerator time and codecarbon energy; trackers."""
