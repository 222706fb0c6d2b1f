"""Compiled synthetic dynamics of softmax attention: GD, NGD and Polyak steps."""

from .dynamics import (DEFAULT_LR, METHODS, PARAMS, Evaluation, evaluate, record_schedule, run,
                       run_many)
from .trajectory import Trajectory

__all__ = ["run", "run_many", "evaluate", "Evaluation", "record_schedule", "Trajectory", "METHODS",
           "PARAMS", "DEFAULT_LR"]
