"""lrlab: compare optimizers and learning-rate schedules on image classification."""

__version__ = "0.1.0"
