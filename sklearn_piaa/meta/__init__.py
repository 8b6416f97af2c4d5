"""Meta-learning algorithms over rater tasks."""

from .base import MetaLearner
from .blg import BLG

ALGORITHMS = {"blg": BLG}

__all__ = ["MetaLearner", "BLG", "ALGORITHMS"]
