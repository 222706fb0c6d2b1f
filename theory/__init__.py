"""Max-margin theory of softmax attention: problems, SVMs and rate checks."""

from .errors import InfeasibleError, TieError
from .problem import LOSSES, AttentionProblem, loss_value
from .rates import RateFit, RatePredictions, assert_rate, fit_rate, predicted_rates
from .selection import is_locally_optimal, locally_optimal_selections
from .svm import (DecoderSolution, MarginSolution, solve_decoder_svm, solve_joint_wsvm,
                  solve_wsvm)

__all__ = ["AttentionProblem", "InfeasibleError", "TieError", "LOSSES", "loss_value"]
__all__ += ["MarginSolution", "DecoderSolution", "solve_wsvm", "solve_decoder_svm",
            "solve_joint_wsvm"]
__all__ += ["is_locally_optimal", "locally_optimal_selections"]
__all__ += ["RateFit", "RatePredictions", "fit_rate", "assert_rate", "predicted_rates"]
from .errors import SolverError  # noqa: E402
from .families import FAMILIES, make_family  # noqa: E402
from .svm import SVMSolution, is_feasible  # noqa: E402

__all__ += ["SolverError", "SVMSolution", "is_feasible", "FAMILIES", "make_family"]
