"""Max-margin theory of softmax attention: problems, SVMs and rate checks."""

from .errors import InfeasibleError, TieError
from .problem import LOSSES, AttentionProblem, loss_value

__all__ = ["AttentionProblem", "InfeasibleError", "TieError", "LOSSES", "loss_value"]
