"""Max-margin theory of softmax attention: problems, SVMs and rate checks."""

from .errors import InfeasibleError, SolverError, TieError
from .families import FAMILIES, make_family
from .fitting import RateFit, RateLaw, assert_rate, fit_rate
from .predictions import RatePredictions, predicted_rates
from .problem import LOSSES, AttentionProblem, loss_value
from .selection import is_locally_optimal, locally_optimal_selections
from .svm import (DecoderSolution, MarginSolution, SVMSolution, is_feasible, solve_decoder_svm,
                  solve_joint_wsvm, solve_wsvm)

__all__ = ["AttentionProblem", "InfeasibleError", "SolverError", "TieError", "LOSSES",
           "loss_value", "FAMILIES", "make_family"]
__all__ += ["SVMSolution", "MarginSolution", "DecoderSolution", "solve_wsvm", "solve_decoder_svm",
            "solve_joint_wsvm", "is_feasible"]
__all__ += ["is_locally_optimal", "locally_optimal_selections"]
__all__ += ["RateFit", "RateLaw", "RatePredictions", "fit_rate", "assert_rate", "predicted_rates"]
