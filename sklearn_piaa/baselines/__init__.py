"""Baselines of BLG-PIAA's Table I and strong simple per-user models, with one API.

Each estimator is fitted on the same task collection as
:class:`~sklearn_piaa.MetaAestheticRegressor`, predicts zero-shot with ``predict`` and
returns a fitted per-rater model from ``personalize(X, y)``.
"""

from ._base import BaselineRegressor, PersonalizedBaseline
from .fpmf import FPMFRegressor
from .pa_iaa import PAIAARegressor
from .pam import PAMRegressor
from .ridge import ConsensusRidgeRegressor, UserRidgeRegressor
from .usar import USARRegressor

__all__ = [
    "BaselineRegressor",
    "PersonalizedBaseline",
    "PAMRegressor",
    "FPMFRegressor",
    "USARRegressor",
    "PAIAARegressor",
    "UserRidgeRegressor",
    "ConsensusRidgeRegressor",
]
