"""Data sets: the built-in procedural benchmark and readers for real rating data sets."""

from .personality import read_personality
from .photo_raters import measure_attributes, simulate_raters
from .readers import read_aadb, read_flickr_aes, read_para, read_ratings, read_real_cur
from .synthetic import consensus_agreement, make_aesthetic_benchmark, pairwise_agreement

__all__ = [
    "make_aesthetic_benchmark",
    "consensus_agreement",
    "pairwise_agreement",
    "measure_attributes",
    "simulate_raters",
    "read_ratings",
    "read_flickr_aes",
    "read_para",
    "read_real_cur",
    "read_aadb",
    "read_personality",
]
