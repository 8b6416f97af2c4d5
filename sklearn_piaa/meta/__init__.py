"""Meta-learning algorithms over rater tasks."""

from .average import Average, NoPrior
from .base import MetaLearner
from .blg import BLG
from .maml import FOMAML, MAML
from .merged import Merged
from .reptile import Reptile

ALGORITHMS = {"blg": BLG, "maml": MAML, "fomaml": FOMAML, "reptile": Reptile,
              "merged": Merged, "average": Average, "none": NoPrior}

__all__ = ["MetaLearner", "BLG", "MAML", "FOMAML", "Reptile", "Merged", "Average", "NoPrior",
           "ALGORITHMS"]
