"""runner: turn a parameter space into tracked, resumable runs packed onto GPU slots."""

__version__ = "0.1.0"
