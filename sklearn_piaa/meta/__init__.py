"""Meta-learning algorithms over rater tasks."""

from .average import Average, NoPrior
from .base import MetaLearner
from .blg import BLG
from .maml import FOMAML, MAML
from .merged import Merged
from .reptile import Reptile

# sklearn_piaa._names.ALGORITHM_NAMES lists the same names for the command line's parser,
# which does not import torch (a test keeps the two equal).
#: The meta-learning algorithms by the name ``MetaAestheticRegressor(algorithm=...)``
#: takes: "blg", "maml", "fomaml", "reptile", "merged", "average" and "none".
ALGORITHMS = {"blg": BLG, "maml": MAML, "fomaml": FOMAML, "reptile": Reptile,
              "merged": Merged, "average": Average, "none": NoPrior}

__all__ = ["MetaLearner", "BLG", "MAML", "FOMAML", "Reptile", "Merged", "Average", "NoPrior",
           "ALGORITHMS"]
