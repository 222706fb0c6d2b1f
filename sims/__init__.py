"""Compiled synthetic dynamics of softmax attention: GD, NGD, Polyak and momentum-NGD steps."""

from .dynamics import (DEFAULT_BETA, DEFAULT_LR, METHODS, PARAMS, Evaluation, evaluate,
                       record_schedule, run, run_many)
from .options import RunFailure, RunOptions
from .trajectory import Trajectory

__all__ = ["run", "run_many", "evaluate", "Evaluation", "record_schedule", "Trajectory",
           "RunOptions", "RunFailure", "METHODS", "PARAMS", "DEFAULT_LR", "DEFAULT_BETA"]
