"""Torch modules (image backbones, the aesthetic head) and the fast paths that train and
run them: the head's hand-written backward pass, a direct fused Adam step, BatchNorm
folding for inference."""

from .adam import adam_step
from .backbones import BACKBONES, Backbone, load_backbone
from .fold import fold_batchnorm
from .head import AestheticHead, AestheticNet
from .head_grad import HeadGradient
from .head_grad_stacked import StackedHeadGradient
from .losses import LOSSES, AestheticLoss, loss_unit, pairwise_rank_loss
from .personality import PersonalityNet

__all__ = ["AestheticHead", "AestheticNet", "Backbone", "BACKBONES", "load_backbone",
           "PersonalityNet", "AestheticLoss", "pairwise_rank_loss", "LOSSES", "HeadGradient",
           "StackedHeadGradient", "adam_step", "fold_batchnorm", "loss_unit"]
