"""Synthetic instance families: re-exported from :mod:`theory.families`, where they live."""

from theory.families import *  # noqa: F401,F403
from theory.families import (FAMILIES, equal_score, gaussian_joint, general_random, make_family,
                             overparam_random)

__all__ = ["equal_score", "overparam_random", "gaussian_joint", "general_random", "FAMILIES",
           "make_family"]
