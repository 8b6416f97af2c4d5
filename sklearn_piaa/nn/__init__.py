"""Torch modules: image backbones and the aesthetic head (no training logic here)."""

from .backbones import BACKBONES, Backbone, load_backbone
from .head import AestheticHead, AestheticNet
from .losses import LOSSES, AestheticLoss, pairwise_rank_loss
from .personality import PersonalityNet

__all__ = ["AestheticHead", "AestheticNet", "Backbone", "BACKBONES", "load_backbone",
           "PersonalityNet", "AestheticLoss", "pairwise_rank_loss", "LOSSES"]
