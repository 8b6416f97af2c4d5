"""Folding BatchNorm into convolutions keeps the function and leaves the original alone."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_piaa import embed_images
from sklearn_piaa.nn import fold
from sklearn_piaa.nn.backbones import load_backbone
from sklearn_piaa.nn.fold import fold_batchnorm


class Residual(nn.Module):
    """A conv whose output feeds its BatchNorm and the sum: folding it would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        h = self.conv(x)
        return self.bn(h) + h


def _randomize_statistics(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)


@pytest.mark.parametrize("name", ["tiny_cnn", "efficientnet_lite0"])
def test_folded_backbone_computes_the_same_embeddings(name):
    backbone = load_backbone(name)
    _randomize_statistics(backbone)
    backbone.train()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    size = backbone.input_size
    x = torch.randn(3, 3, size, size)
    folded = fold_batchnorm(backbone, x[:1])
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert n_bn > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert backbone.training  # the original keeps its mode and its weights
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    with torch.no_grad():
        ref = backbone.eval()(x)
        out = folded(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_only_pairs_known_to_be_adjacent_are_folded():
    net = Residual()
    _randomize_statistics(net)
    folded = fold_batchnorm(net)
    assert isinstance(folded.bn, nn.BatchNorm2d)  # not in the registry: left alone


def test_a_wrong_fold_is_caught_by_the_check(monkeypatch):
    net = Residual()
    _randomize_statistics(net)
    key = (Residual.__module__.split(".")[0], "Residual")
    monkeypatch.setitem(fold._PAIRS, key, [("conv", "bn")])
    x = torch.randn(2, 3, 8, 8)
    assert isinstance(fold_batchnorm(net).bn, nn.Identity)  # unchecked: folded, wrongly
    checked = fold_batchnorm(net, x)
    assert isinstance(checked.bn, nn.BatchNorm2d)  # the check restored the original
    with torch.no_grad():
        torch.testing.assert_close(checked(x), net.eval()(x))


def test_embed_images_uses_the_folded_network_with_the_same_result(image_files):
    from sklearn_piaa._features import ImageEmbedder, image_tensor, load_image

    paths = image_files
    backbone = load_backbone("tiny_cnn")
    _randomize_statistics(backbone)

    embedder = ImageEmbedder(backbone, torch.device("cpu"))
    batch = torch.stack([image_tensor(load_image(p), 32, backbone.mean, backbone.std)
                         for p in paths])
    with torch.no_grad():
        ref = backbone.eval()(batch).numpy()
    np.testing.assert_allclose(embedder.transform(paths), ref, rtol=1e-4, atol=1e-5)
    assert embedder._folded is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in embedder._folded.modules())
    np.testing.assert_allclose(embed_images(paths, backbone=backbone), ref, rtol=1e-4,
                               atol=1e-5)


def test_lean_efficientnet_lite_is_the_librarys_network_bit_for_bit(monkeypatch):
    # ReLU6 in place and padding inside the convolutions: the library's own
    # network, forward and backward, with its state_dict, and the same random draws
    from efficientnet_lite_pytorch import EfficientNet

    from sklearn_piaa.nn import backbones

    draws = []
    for lean in (backbones._lean, lambda net: None):
        monkeypatch.setattr(backbones, "_lean", lean)
        torch.manual_seed(0)
        load_backbone("efficientnet_lite0")
        draws.append(torch.rand(3))  # a head made next gets the same initial weights
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    monkeypatch.undo()

    lean = load_backbone("efficientnet_lite0")
    plain = EfficientNet.from_name("efficientnet-lite0")
    del plain._fc
    plain.load_state_dict(lean.features.net.state_dict())
    assert sum(type(m) is nn.Conv2d for m in lean.modules()) == 12  # padded inside
    assert sum(type(m) is backbones._OffsetConv2d for m in lean.modules()) == 4  # stride 2
    assert all(m.inplace for m in lean.modules() if isinstance(m, nn.ReLU6))
    assert not any(isinstance(m, nn.ReLU6) and m.inplace for m in plain.modules())
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(lean.eval()(x), plain.eval().extract_features(x).mean((2, 3)),
                                   rtol=0, atol=0)
        xc = x.contiguous(memory_format=torch.channels_last)  # the layout embedding runs in
        torch.testing.assert_close(lean.to(memory_format=torch.channels_last)(xc),
                                   plain.to(memory_format=torch.channels_last)
                                   .extract_features(xc).mean((2, 3)), rtol=0, atol=0)
    lean.train(), plain.train()
    for forward in (lean, lambda x: plain.extract_features(x).mean((2, 3))):
        torch.manual_seed(0)  # the same drop-connect draws in training
        forward(x).square().sum().backward()
    grads = dict(plain.named_parameters())
    for name, p in lean.features.net.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=0, atol=0)


def _conv_bn(bias=0.0):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.fill_(bias)
    return net


def test_check_tolerance_is_relative_to_the_output_scale():
    # outputs around 1e5: float32 rounding of a correct fold is ~1e-2 absolute but
    # ~1e-7 relative, well inside rtol=1e-3 of the scale: the fold must be kept
    net = _conv_bn(bias=1e5)
    x = torch.randn(2, 3, 8, 8)
    folded = fold_batchnorm(net, x)
    assert isinstance(folded[1], nn.Identity)
    with torch.no_grad():
        ref = net.eval()(x)
        assert float((folded(x) - ref).abs().max()) > 1e-3  # the case is a real one
        torch.testing.assert_close(folded(x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_folded_and_fallback_copies_do_not_require_grad(monkeypatch):
    net = _conv_bn()
    folded = fold_batchnorm(net, torch.randn(2, 3, 8, 8))
    assert isinstance(folded[1], nn.Identity)
    assert not any(p.requires_grad for p in folded.parameters())

    res = Residual()
    with torch.no_grad():
        res.bn.running_mean.uniform_(-0.5, 0.5)
        res.bn.running_var.uniform_(0.5, 2.0)
    monkeypatch.setitem(fold._PAIRS, (Residual.__module__.split(".")[0], "Residual"),
                        [("conv", "bn")])
    checked = fold_batchnorm(res, torch.randn(2, 3, 8, 8))
    assert isinstance(checked.bn, nn.BatchNorm2d)  # the check fell back to the original
    assert not any(p.requires_grad for p in checked.parameters())
    assert all(p.requires_grad for p in res.parameters())  # the original is left alone


def test_check_scale_is_the_largest_output_not_the_mean():
    # one channel around 1e5, 511 near 0: the docstring's "rtol of the output's scale"
    # is of its largest value; measured against the mean the correct fold was refused
    net = nn.Sequential(nn.Conv2d(3, 512, 1), nn.BatchNorm2d(512))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.fill_(1e-3)
        net[1].bias.zero_()
        net[1].weight[0] = 1.0
        net[1].bias[0] = 1e5
    x = torch.randn(2, 3, 8, 8)
    folded = fold_batchnorm(net, x, rtol=1e-6)
    assert isinstance(folded[1], nn.Identity)
