"""Data sets: the built-in procedural benchmark and readers for real rating data sets."""

from .readers import read_aadb, read_flickr_aes, read_para, read_ratings, read_real_cur
from .synthetic import consensus_agreement, make_aesthetic_benchmark, pairwise_agreement

__all__ = [
    "make_aesthetic_benchmark",
    "consensus_agreement",
    "pairwise_agreement",
    "read_ratings",
    "read_flickr_aes",
    "read_para",
    "read_real_cur",
    "read_aadb",
]
