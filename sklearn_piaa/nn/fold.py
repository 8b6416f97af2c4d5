"""Batch normalization folded into the convolution before it, for frozen-backbone inference.

In eval mode a BatchNorm layer is a per-channel affine map, which the convolution that
feeds it can absorb (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): the network
computes the same function with one memory pass fewer per layer. EfficientNet-Lite0
has 49 such pairs; folding them embeds images about 1.2x faster on a 2-core CPU
(``benchmarks/speed.py``).
"""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm"]

# (conv, bn) attributes whose forward feeds the conv's output only to the BN, per class,
# keyed by (module prefix, class name) so that a look-alike class elsewhere is left alone.
_PAIRS = {
    ("efficientnet_lite_pytorch", "EfficientNet"): [("_conv_stem", "_bn0"),
                                                    ("_conv_head", "_bn1")],
    ("efficientnet_lite_pytorch", "MBConvBlock"): [("_expand_conv", "_bn0"),
                                                   ("_depthwise_conv", "_bn1"),
                                                   ("_project_conv", "_bn2")],
    ("torchvision", "ResNet"): [("conv1", "bn1")],
    ("torchvision", "BasicBlock"): [("conv1", "bn1"), ("conv2", "bn2")],
    ("torchvision", "Bottleneck"): [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")],
    ("torchvision", "BasicConv2d"): [("conv", "bn")],
}


def _foldable(conv, bn):
    return (isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d
            and bn.track_running_stats and bn.running_mean is not None
            and conv.out_channels == bn.num_features)


def _pairs(parent):
    """``(conv name, bn name)`` pairs of ``parent`` known to be adjacent in its forward."""
    if isinstance(parent, nn.Sequential):
        # In a Sequential each child's output feeds the next child only.
        names = list(parent._modules)
        return list(zip(names, names[1:]))
    key = (type(parent).__module__.split(".")[0], type(parent).__name__)
    return _PAIRS.get(key, [])


@torch.no_grad()
def fold_batchnorm(module, example=None, rtol=1e-3):
    """An eval-mode copy of ``module`` with BatchNorm folded into the convolutions before it.

    Only pairs known to be adjacent are folded: consecutive children of an
    ``nn.Sequential``, and the named pairs of EfficientNet-Lite and torchvision's
    ResNet and Inception blocks. The copy is checked on ``example``: if its output
    differs from the original's by more than ``rtol`` of the output's scale, the
    unfolded copy is returned instead.

    Parameters
    ----------
    module : nn.Module
        Left unchanged.
    example : Tensor, default=None
        An input batch for the check; ``None`` skips it.
    rtol : float, default=1e-3

    Returns
    -------
    nn.Module
        In eval mode; parameters do not require gradients.
    """
    folded = copy.deepcopy(module).eval()
    for parent in list(folded.modules()):
        for conv_name, bn_name in _pairs(parent):
            conv, bn = parent._modules.get(conv_name), parent._modules.get(bn_name)
            if _foldable(conv, bn):
                parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                parent._modules[bn_name] = nn.Identity()
    folded.requires_grad_(False)
    if example is not None:
        was_training = module.training
        reference = module.eval()(example)
        module.train(was_training)
        out = folded(example)
        scale = float(reference.abs().max()) or 1.0
        if out.shape != reference.shape or float((out - reference).abs().max()) > rtol * scale:
            folded = copy.deepcopy(module).eval().requires_grad_(False)
    return folded
