"""Max-margin theory of softmax attention: problems, SVMs and rate checks."""

from .errors import InfeasibleError, TieError
from .problem import LOSSES, AttentionProblem, loss_value
from .rates import RateFit, RatePredictions, assert_rate, fit_rate, predicted_rates

__all__ = ["AttentionProblem", "InfeasibleError", "TieError", "LOSSES", "loss_value"]
__all__ += ["RateFit", "RatePredictions", "fit_rate", "assert_rate", "predicted_rates"]
