"""Personalized image aesthetics assessment with a scikit-learn API.

Meta-train an aesthetic prior over many raters (BLG-PIAA), then personalize it to a new
rater from a few of their ratings.
"""

import importlib
import typing

# Imported now, as the package's import always did: _io reads the umask by setting it,
# which is not thread-safe later on.
from . import _io  # noqa: F401

if typing.TYPE_CHECKING:  # the names as static tools and readers look them up
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

# The public names are imported when first used (PEP 562), not with the package: torch
# and scikit-learn take seconds to import, which `sklearn-piaa --help` need not wait for.
_SOURCES = {
    "MetaAestheticRegressor": "._estimator",
    "embed_images": "._features",
    "load_model": "._persistence",
    "save_model": "._persistence",
    "PersonalizedNet": "._personalize",
    "TaskVectorRegressor": "._task_vectors",
    "TaskSet": "._tasks",
    "PIAAWarning": "._warnings",
    "UndefinedSROCCWarning": "._warnings",
    **dict.fromkeys(["ConsensusRidgeRegressor", "FPMFRegressor", "PAIAARegressor",
                     "PAMRegressor", "USARRegressor", "UserRidgeRegressor"], ".baselines"),
    **dict.fromkeys(["PersonalizationResult", "compare_support_strategies",
                     "evaluate_personalization"], ".evaluation"),
    "gradient_map": ".explain",
    **dict.fromkeys(["PersonalizedSROCCScorer", "SROCCSummary", "aggregate_srocc",
                     "personalized_srocc", "srocc", "srocc_scorer"], ".metrics"),
    **dict.fromkeys(["SupportQuerySplit", "UserGroupKFold", "UserGroupShuffleSplit"],
                    ".model_selection"),
    **dict.fromkeys(["SupportSelector", "select_support"], ".support"),
}

# The submodules that importing the package imported along with those names, so that
# code reading them as its attributes (`sklearn_piaa.datasets.read_ratings` after a bare
# `import sklearn_piaa`) still finds them.
_SUBMODULES = frozenset([
    "baselines", "datasets", "evaluation", "explain", "meta", "metrics", "model_selection",
    "nn", "support", "_array_loader", "_checkpoint", "_device", "_diverged", "_estimator",
    "_features", "_inputs", "_interrupts", "_messages", "_persistence", "_personalize",
    "_pickled", "_progress", "_task_vectors", "_tasks", "_warnings",
])


def __getattr__(name):
    source = _SOURCES.get(name)
    if source is not None:
        value = getattr(importlib.import_module(source, __name__), name)
        globals()[name] = value  # found directly from now on, without this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
