"""PA_IAA's multi-task network: a generic-aesthetics head and a personality head."""

from torch import nn

__all__ = ["PersonalityNet"]


class PersonalityNet(nn.Module):
    """A shared trunk with two heads: generic score and Big-Five traits in [-1, 1].

    Parameters
    ----------
    in_features : int
        Size of the image embedding.
    hidden_size : int, default=128
    n_traits : int, default=5
    dropout : float, default=0.2
    """

    def __init__(self, in_features, hidden_size=128, n_traits=5, dropout=0.2):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_features, hidden_size), nn.ReLU(),
                                   nn.Dropout(dropout))
        self.generic = nn.Linear(hidden_size, 1)
        self.personality = nn.Sequential(nn.Linear(hidden_size, n_traits), nn.Tanh())

    def forward(self, x):
        """Return ``(generic score (N,), traits (N, n_traits))``."""
        h = self.trunk(x)
        return self.generic(h).squeeze(-1), self.personality(h)
