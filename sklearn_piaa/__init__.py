"""Personalized image aesthetics assessment with a scikit-learn API.

Meta-train an aesthetic prior over many raters (BLG-PIAA), then personalize it to a new
rater from a few of their ratings.
"""

from ._estimator import MetaAestheticRegressor
from ._features import embed_images
from ._persistence import load_model, save_model
from ._personalize import PersonalizedNet
from ._task_vectors import TaskVectorRegressor
from ._tasks import TaskSet
from ._warnings import PIAAWarning, UndefinedSROCCWarning
from .baselines import (
    ConsensusRidgeRegressor,
    FPMFRegressor,
    PAIAARegressor,
    PAMRegressor,
    USARRegressor,
    UserRidgeRegressor,
)
from .evaluation import (
    PersonalizationResult,
    compare_support_strategies,
    evaluate_personalization,
)
from .explain import gradient_map
from .metrics import (
    PersonalizedSROCCScorer,
    SROCCSummary,
    aggregate_srocc,
    personalized_srocc,
    srocc,
    srocc_scorer,
)
from .model_selection import SupportQuerySplit, UserGroupKFold, UserGroupShuffleSplit
from .support import SupportSelector, select_support

__version__ = "0.1.0.dev0"

__all__ = [
    "MetaAestheticRegressor",
    "PersonalizedNet",
    "TaskVectorRegressor",
    "save_model",
    "load_model",
    "gradient_map",
    "TaskSet",
    "embed_images",
    "srocc",
    "srocc_scorer",
    "aggregate_srocc",
    "personalized_srocc",
    "PersonalizedSROCCScorer",
    "evaluate_personalization",
    "PersonalizationResult",
    "compare_support_strategies",
    "SupportSelector",
    "select_support",
    "SROCCSummary",
    "UserGroupKFold",
    "UserGroupShuffleSplit",
    "SupportQuerySplit",
    "PIAAWarning",
    "UndefinedSROCCWarning",
    "PAMRegressor",
    "FPMFRegressor",
    "USARRegressor",
    "PAIAARegressor",
    "UserRidgeRegressor",
    "ConsensusRidgeRegressor",
]
