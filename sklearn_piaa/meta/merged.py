"""The "merged" ablation of BLG-PIAA (Zhu et al., IEEE TCYB 2020, Fig. 5(a))."""


from .blg import BLG

__all__ = ["Merged"]


class Merged(BLG):
    """BLG without the support/query split: one Adam run on the whole task.

    The ablation that BLG-PIAA compares its bilevel inner loop against: each task's
    support and query sets are merged into one set, a copy of the prior takes
    ``2 * inner_steps`` Adam steps on it (as many steps as BLG takes in total), and the
    prior moves towards the adapted weights with BLG's outer update.

    The parameters are those of :class:`~sklearn_piaa.meta.MetaLearner`.

    Notes
    -----
    The returned loss is the loss on the merged task before the last inner step.

    References
    ----------
    .. [1] H. Zhu, L. Li, J. Wu, S. Zhao, G. Ding and G. Shi, "Personalized Image
       Aesthetics Assessment via Meta-Learning With Bilevel Gradient Optimization",
       IEEE Transactions on Cybernetics, 52(3):1798-1811, 2022 (online 2020), Fig. 5(a).
    """

    def phases(self, support, query):
        """The merged task, twice: ``2 * inner_steps`` steps with one optimizer."""
        merged = self.merge(support, query)
        return [merged, merged]
