"""Compatibility module: curve fitting now lives in :mod:`theory.fitting` and the
paper's predictions in :mod:`theory.predictions`; both are re-exported here."""

from .fitting import MODELS, RateFit, RateLaw, assert_rate, fit_rate
from .predictions import RatePredictions, predicted_rates

__all__ = ["MODELS", "RateFit", "RateLaw", "RatePredictions", "fit_rate", "assert_rate",
           "predicted_rates"]
