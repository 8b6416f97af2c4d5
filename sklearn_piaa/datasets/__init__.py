"""Data sets: the built-in procedural benchmark (readers for real data sets come later)."""

from .synthetic import consensus_agreement, make_aesthetic_benchmark, pairwise_agreement

__all__ = ["make_aesthetic_benchmark", "consensus_agreement", "pairwise_agreement"]
