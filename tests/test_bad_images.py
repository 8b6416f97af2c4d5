"""Images and embeddings that once gave a silent wrong answer, now told apart or refused."""

import glob
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_piaa import MetaAestheticRegressor, embed_images
from sklearn_piaa._features import ImageEmbedder, load_image, thread_map
from sklearn_piaa.nn import AestheticHead, Backbone, load_backbone

SMALL = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2, support_size=4,
             query_size=2, finetune_epochs=1, random_state=0)


def _embed(images, **kwargs):
    torch.manual_seed(0)  # tiny_cnn is randomly initialized: the same weights every call
    return embed_images(images, backbone="tiny_cnn", **kwargs)


def test_palette_images_are_keyed_by_their_colours():
    idx = Image.fromarray((np.arange(40 * 48).reshape(40, 48) % 4).astype(np.uint8), "P")
    a, b = idx.copy(), idx.copy()
    a.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255] + [0] * 756)
    b.putpalette([10, 10, 10, 90, 90, 90, 170, 170, 170, 250, 250, 250] + [0] * 756)
    together = _embed([a, b])
    assert not np.allclose(together[0], together[1])  # one cached row for both, before
    # batches of 1 and 2 may round apart (AVX2 CPUs): 6.5e-10 off on a value of 3e-5
    np.testing.assert_allclose(together[1], _embed([b])[0], rtol=1e-5, atol=1e-7)


def test_an_upright_file_is_decoded_before_it_is_closed(tmp_path, monkeypatch):
    # Pillow 10.0's exif_transpose(in_place=True) returns without decoding an upright
    # image: the image read from a file came back undecoded, its file closed.
    from PIL import ImageOps

    from sklearn_piaa import _features

    def pillow_10_0(image, *, in_place=False):
        assert in_place
        if image.getexif().get(0x0112, 1) != 1:
            raise AssertionError("an upright image was expected")

    monkeypatch.setattr(ImageOps, "exif_transpose", pillow_10_0)
    arr = np.random.RandomState(0).randint(0, 256, (30, 40, 3)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg")  # a JPEG's EXIF is read without decoding
    with Image.open(tmp_path / "a.jpg") as expected:
        expected = np.asarray(expected.convert("RGB"))
    for img in (load_image(tmp_path / "a.jpg"), _features._draft(tmp_path / "a.jpg", 16)):
        np.testing.assert_array_equal(np.asarray(img), expected)


def _rotated_jpeg(tmp_path):
    """A JPEG whose EXIF orientation (6) says: rotate 90 degrees clockwise to display."""
    exif = Image.Exif()
    exif[0x0112] = 6
    rng = np.random.RandomState(0)
    path = tmp_path / "rotated.jpg"
    Image.fromarray((rng.rand(40, 56, 3) * 255).astype(np.uint8)).save(path, exif=exif)
    return path


def test_exif_orientation_is_applied_to_pil_images(tmp_path):
    path = _rotated_jpeg(tmp_path)
    with Image.open(path) as opened:
        np.testing.assert_allclose(_embed([opened])[0], _embed([str(path)])[0], rtol=1e-5)


def _pooling_backbone(pool, input_size=32):
    return Backbone(pool, out_features=3, input_size=input_size, name="mine")


def test_user_backbones_do_not_share_cached_embeddings(image_files, tmp_path):
    cpu = torch.device("cpu")
    # Neither has weights: the weights' fingerprint alone cannot tell them apart.
    average = _pooling_backbone(torch.nn.AdaptiveAvgPool2d(1))
    maximum = _pooling_backbone(torch.nn.AdaptiveMaxPool2d(1))
    larger = _pooling_backbone(torch.nn.AdaptiveAvgPool2d(1), input_size=48)
    cache = tmp_path / "cache"
    first = ImageEmbedder(average, cpu, cache_dir=cache).transform(image_files)
    for other in (maximum, larger):
        cached = ImageEmbedder(other, cpu, cache_dir=cache).transform(image_files)
        fresh = ImageEmbedder(other, cpu).transform(image_files)
        np.testing.assert_allclose(cached, fresh, rtol=1e-6)
        assert not np.allclose(cached, first)
    assert len(os.listdir(cache)) == 3


@pytest.mark.parametrize("damage", ["empty", "inf", "float64"])
def test_damaged_cache_entries_are_recomputed(image_files, tmp_path, damage):
    backbone = load_backbone("tiny_cnn")
    cpu = torch.device("cpu")
    cache = tmp_path / "cache"
    clean = ImageEmbedder(backbone, cpu, cache_dir=cache).transform(image_files)
    folder = cache / os.listdir(cache)[0]
    entry = folder / sorted(os.listdir(folder))[0]
    if damage == "empty":  # what a crash can leave: entries are written without fsync
        entry.write_bytes(b"")
    else:
        np.save(entry, np.full(clean.shape[1], np.inf if damage == "inf" else 0.0,
                               np.float32 if damage == "inf" else np.float64))
    again = ImageEmbedder(backbone, cpu, cache_dir=cache).transform(image_files)
    np.testing.assert_array_equal(again, clean)


class _Standardize(torch.nn.Module):
    """Divides by the image's spread: not finite for a flat image."""

    def forward(self, x):
        f = x.flatten(2)
        return f[:, :, 0] / f.std(2).sum(1, keepdim=True)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_backbone_that_gives_nan_is_an_error_not_an_unreadable_image(image_files, tmp_path,
                                                                        on_error):
    flat = tmp_path / "flat.png"
    Image.new("RGB", (40, 40), (90, 90, 90)).save(flat)
    X = list(image_files[:6]) + [str(flat)]
    y = np.tile(np.arange(1.0, 8.0), 2)
    groups = np.repeat(["a", "b"], 7)
    backbone = Backbone(_Standardize(), out_features=3, input_size=32, name="standardize")
    meta = MetaAestheticRegressor(**{**SMALL, "backbone": backbone, "on_error": on_error})
    with pytest.raises(ValueError, match="NaN or infinite embeddings for 1 image.*flat.png"):
        meta.fit(X * 2, y, groups=groups)


def _truncated(tmp_path, image_files):
    data = open(image_files[0], "rb").read()
    path = tmp_path / ("cut" + os.path.splitext(image_files[0])[1])
    path.write_bytes(data[:len(data) // 2])
    return Image.open(path)  # decodes lazily: the damage shows only when read


@pytest.mark.parametrize("train_backbone", [False, True])
def test_a_lazily_opened_truncated_image_is_unreadable(image_files, tmp_path, train_backbone):
    images = [Image.open(p) for p in image_files[1:7]] + [_truncated(tmp_path, image_files)]
    _check_last_is_unreadable(images, train_backbone,
                              "cannot read <.*ImageFile image>.*truncated", "truncated")


def _check_last_is_unreadable(X, train_backbone, error, warning):
    """Seven images, the last unreadable, rated by two raters: an error, or skipped."""
    y = np.tile(np.arange(1.0, 8.0), 2)
    groups = np.repeat(["a", "b"], 7)
    params = {**SMALL, "train_backbone": train_backbone}
    with pytest.raises(ValueError, match=error):
        MetaAestheticRegressor(**params).fit(X * 2, y, groups=groups)
    with pytest.warns(UserWarning, match=warning):
        meta = MetaAestheticRegressor(**params, on_error="skip").fit(X * 2, y, groups=groups)
        pred = meta.predict(X)
    assert np.isnan(pred[-1]) and np.isfinite(pred[:-1]).all()


def _noise_png(path, seed=0):
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 256, (300, 400, 3)).astype(np.uint8)).save(path)
    return path


def test_one_lazily_opened_image_decoded_by_many_threads_gives_its_own_pixels(tmp_path):
    # One Image.open object rated by several raters is decoded by several threads at once;
    # Pillow's lazy load is not thread-safe: other pixels half the time, before.
    path = _noise_png(tmp_path / "noise.png")
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("RGB"))
    for _ in range(10):
        lazy = Image.open(path)
        for img in thread_map(load_image, [lazy] * 8, threads=8):
            np.testing.assert_array_equal(np.asarray(img), expected)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_a_png_with_a_broken_chunk_is_unreadable(image_files, tmp_path, train_backbone):
    data = bytearray(_noise_png(tmp_path / "noise.png").read_bytes())
    second_idat = data.find(b"IDAT", data.find(b"IDAT") + 4)
    data[second_idat:second_idat + 4] = b"\x02\x80\xd1\xef"  # Pillow: SyntaxError
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(data))
    _check_last_is_unreadable(list(image_files[:6]) + [str(broken)], train_backbone,
                              "cannot read image file .*broken.png: broken PNG", "broken.png")


def test_whole_network_checkpoint_of_other_images_is_another_run(image_files, tmp_path):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    ckpt = tmp_path / "ckpt"
    params = dict(SMALL, train_backbone=True, checkpoint_dir=ckpt, n_iterations=1)
    MetaAestheticRegressor(**params).fit(image_files[:6] * 2, y, groups=groups)
    MetaAestheticRegressor(**params).fit(image_files[6:12] * 2, y, groups=groups)
    assert len(os.listdir(ckpt)) == 2  # the images are part of the run's identity


def test_a_backbone_declaring_another_width_is_refused_by_name():
    # fit failed in the head with torch's "mat1 and mat2 shapes cannot be multiplied"
    conv = Backbone(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=4), torch.nn.ReLU()),
                    out_features=10, input_size=32, name="mine")
    with pytest.raises(ValueError, match=r"^Backbone 'mine' declares out_features=10, but "
                                         r"given one image of its input_size \(32 x 32\) it "
                                         r"returns 16 features: set out_features=16\.$"):
        load_backbone(conv)
    fixed = Backbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)),
                     out_features=4, input_size=32, name="fixed")
    with pytest.raises(ValueError, match=r"^Backbone 'fixed' fails on one image of its "
                                         r"input_size \(32 x 32\): mat1 and mat2"):
        load_backbone(fixed)


def test_a_user_backbone_that_cannot_train_on_one_image_is_named():
    # torch's bare "Expected more than 1 value per channel when training" on a rater's
    # last batch of one, naming neither the backbone nor a way out
    from sklearn_piaa.nn.head import BatchNorm1d

    def backbone(norm):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=8),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), norm(8))

    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (24, 32, 32, 3)).astype(np.uint8)
    y, groups = np.tile([1.0, 2, 3, 4, 5, 3], 4), np.repeat(["a", "b"], 12)
    params = dict(train_backbone=True, hidden_sizes=(4,), n_iterations=1, support_size=4,
                  query_size=4, finetune_epochs=1, random_state=0)
    meta = MetaAestheticRegressor(backbone=backbone(torch.nn.BatchNorm1d), **params).fit(
        images, y, groups=groups)
    with pytest.raises(ValueError, match=r"^backbone 'custom' cannot train on a batch of one "
                                         r"image .*sklearn_piaa\.nn\.head\.BatchNorm1d"):
        meta.personalize(images[:11], y[:11], batch_size=10)
    # the advice works
    meta = MetaAestheticRegressor(backbone=backbone(BatchNorm1d), **params).fit(
        images, y, groups=groups)
    assert np.isfinite(meta.personalize(images[:11], y[:11], batch_size=10).predict(
        images[:3])).all()


def _half_transparent():
    rng = np.random.RandomState(0)
    rgba = rng.randint(0, 255, (40, 48, 4)).astype(np.uint8)
    rgba[:, :24, 3] = 0  # left half transparent, over random colours
    rgba[:, 24:, 3] = 255
    return rgba


def test_rgba_arrays_are_put_on_white_like_rgba_images():
    # The alpha channel of a 4-channel array was dropped, exposing the hidden colours.
    rgba = _half_transparent()
    flat = np.where(rgba[..., 3:] == 0, 255, rgba[..., :3]).astype(np.uint8)
    got = _embed([rgba, Image.fromarray(rgba, "RGBA"), flat])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0], got[2], rtol=1e-5, atol=1e-6)


def test_palette_alpha_and_premultiplied_images_are_put_on_white(tmp_path):
    # Image.quantize of an RGBA image keeps the alpha in its palette, with nothing in
    # info: in memory it showed the hidden colours (the same image as a PNG file did
    # not), and two such images differing only in palette alpha shared a cache key.
    # A premultiplied "La" image, listed as handled, failed in Pillow's conversion.
    rgba = _half_transparent()
    quantized = Image.fromarray(rgba, "RGBA").quantize(colors=16)
    assert quantized.mode == "P" and "transparency" not in quantized.info
    quantized.save(tmp_path / "q.png")
    opaque = quantized.copy()
    opaque.putpalette(quantized.getpalette("RGB"), "RGB")
    white = np.asarray(Image.alpha_composite(
        Image.new("RGBA", quantized.size, (255,) * 4), quantized.convert("RGBA")))
    grey = Image.fromarray(rgba[..., [0, 3]].copy(), "LA")
    got = _embed([quantized, str(tmp_path / "q.png"), white[..., :3].copy(), opaque,
                  grey.convert("La"), grey])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0], got[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], got[3], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got[4], got[5], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_colour_keyed_transparency_is_put_on_white(tmp_path, mode):
    # PNG optimizers store "one colour is transparent" as a tRNS chunk on RGB and L
    # images; only palette images had their transparency honoured.
    arr = np.full((40, 48, 3), 200, np.uint8)
    arr[:, :24] = 0  # the transparent colour (black)
    img = Image.fromarray(arr).convert(mode)
    key = 0 if mode == "L" else (0, 0, 0)
    img.save(tmp_path / "keyed.png", transparency=key)
    white = arr.copy()
    white[:, :24] = 255
    got = _embed([str(tmp_path / "keyed.png"), Image.fromarray(white).convert(mode)])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)


def test_float_and_int_images_are_scaled_by_nearly_all_their_pixels():
    # the scale was read from the brightest pixel: a float image in [0, 1] with one
    # pixel at 1.0001 (bicubic overshoot) became black, as 0-255; an int image of 0-255
    # with one 256 was divided by 257; 32-bit samples were clipped to white
    grey = (np.arange(40 * 48).reshape(40, 48) % 251).astype(np.uint8)
    over = grey.astype(np.float32) / 255
    over[0, 0] = 1.0001
    one = grey.astype(np.int32)
    one[0, 0] = 256
    wide = grey.astype(np.int64) * (np.iinfo(np.int32).max // 255)
    got = _embed([grey, Image.fromarray(grey.astype(np.float32) / 255), Image.fromarray(over),
                  Image.fromarray(one), Image.fromarray(wide.astype(np.int32))])
    for i in range(1, 5):
        np.testing.assert_allclose(got[i], got[0], rtol=1e-2, atol=1e-2, err_msg=str(i))


def _write_grey16_png(path, arr, key):
    """A 16-bit greyscale PNG whose value ``key`` is transparent (a tRNS chunk), written
    by hand: Pillow 10.0 cannot save one."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    h, w = arr.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in arr)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
                     + chunk(b"tRNS", struct.pack(">H", key))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_16_bit_colour_key_is_put_on_white(tmp_path):
    # to_rgb rescaled 16-bit greyscale before it looked for transparency: the
    # transparent pixels showed what they hid
    arr = np.full((40, 48), 200 * 257, np.uint16)
    arr[:, :24] = 0  # the transparent value
    _write_grey16_png(tmp_path / "keyed16.png", arr, key=0)
    white = np.full((40, 48, 3), 200, np.uint8)
    white[:, :24] = 255
    got = _embed([str(tmp_path / "keyed16.png"), white])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0)])
def test_an_image_of_no_pixels_is_refused(shape):
    # resized, it was a black image: embedded as one without a word
    h, w = shape
    with pytest.raises(ValueError, match=r"has no pixels"):
        _embed([Image.new("RGB", (w, h))])
    with pytest.raises(ValueError, match=r"has no pixels"):
        _embed([np.zeros((h, w, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"image arrays must have pixels: X has shape"):
        _embed(np.zeros((2, h, w, 3), np.uint8))


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    # The cache key encoded the name as UTF-8 and failed (UnicodeEncodeError).
    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"caf\xe9.jpg")
    Image.new("RGB", (40, 40), (200, 60, 30)).save(name, "JPEG")  # Pillow 10.0: no b".jpg"
    path = os.fsdecode(name)
    got = _embed([path, Image.open(path)])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)


def test_a_closed_lazy_image_and_an_empty_cell_are_named(tmp_path):
    Image.new("RGB", (40, 40), (200, 60, 30)).save(tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as closed:
        pass
    with pytest.raises(ValueError, match="the image is closed .* call .load"):
        _embed([closed])
    for empty in (None, float("nan")):
        with pytest.raises(ValueError, match=r"X\[1\] is not an image: (None|nan)"):
            _embed([str(tmp_path / "a.jpg"), empty])


def test_one_greyscale_frame_is_not_read_as_rows_of_features():
    # A (H, W) uint8 frame of width 1280 was scored as H rows of EfficientNet features.
    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"))
    frame = np.zeros((20, embedder.out_features), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"2-D uint8 array .* one greyscale image"):
        embedder.transform(frame)
    assert embedder.transform([frame]).shape == (1, embedder.out_features)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_refitting_a_personalized_net_leaves_unreadable_images_out(image_files, tmp_path,
                                                                    train_backbone):
    # personalize dropped them, but the net's own fit (a clone in cross_val_score)
    # trained on them: NaN embeddings made every weight NaN, a blank image was learnt.
    from sklearn_piaa import PIAAWarning
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(**{**SMALL, "train_backbone": train_backbone,
                                     "on_error": "skip"})
    meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6))
    net = meta.personalize(image_files[:6], y[:6], random_state=0)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.warns(PIAAWarning, match="bad.png"):
        net.fit([*image_files[:6], str(bad)], np.r_[y[:6], 4.5])
    with_bad = net.predict(image_files[6:])
    without = net.fit(image_files[:6], y[:6]).predict(image_files[6:])
    assert np.isfinite(with_bad).all()
    np.testing.assert_array_equal(with_bad, without)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_on_error_set_after_fit_is_applied(image_files, tmp_path, train_backbone):
    # set_params(on_error="skip") on a fitted (or loaded) prior showed in get_params, but
    # its input adapter kept fit's "raise": no way to skip a bad file but a refit
    y = np.tile(np.arange(1.0, 7.0), 2)
    meta = MetaAestheticRegressor(**SMALL, train_backbone=train_backbone).fit(
        image_files[:6] * 2, y, groups=np.repeat(["a", "b"], 6))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(open(image_files[1], "rb").read()[:200])
    X = [*image_files[6:11], str(bad)]
    with pytest.raises(ValueError, match="bad.jpg"):
        meta.predict(X)
    meta.set_params(on_error="skip")
    with pytest.warns(UserWarning, match="bad.jpg"):
        pred = meta.predict(X)
    assert np.isnan(pred[-1]) and np.isfinite(pred[:-1]).all()
    with pytest.warns(UserWarning, match="bad.jpg"):
        net = meta.personalize(X, np.arange(1.0, 7.0), max_epochs=1)
    assert np.isfinite(net.predict(X[:5])).all()
    meta.set_params(on_error="raise")
    with pytest.raises(ValueError, match="bad.jpg"):
        meta.personalize(X, np.arange(1.0, 7.0), max_epochs=1)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_skipped_images_neither_set_the_range_nor_drop_a_rater_silently(
        image_files, tmp_path, train_backbone):
    # the scores of unreadable images set score_range_ (the head's scale), and a rater
    # none of whose images could be read vanished from raters_ without a word
    gone = [str(tmp_path / f"gone{i}.jpg") for i in range(3)]
    X = image_files[:6] * 2 + gone
    y = np.r_[np.tile(np.arange(1.0, 7.0), 2), [9.0] * 3]
    groups = [*["a"] * 6, *["b"] * 6, *["ghost"] * 3]
    with pytest.warns(UserWarning) as record:
        meta = MetaAestheticRegressor(**SMALL, train_backbone=train_backbone,
                                      on_error="skip").fit(X, y, groups=groups)
    assert meta.score_range_ == (1.0, 6.0) and meta.raters_ == ["a", "b"]
    heads = [m for m in meta.prior_net_.module_.modules() if isinstance(m, AestheticHead)]
    assert [(h.score_low.item(), h.score_span.item()) for h in heads] == [(1.0, 5.0)]
    assert meta.predict(image_files[:6]).max() < 6.0
    messages = " ".join(str(w.message) for w in record)
    assert "no readable image" in messages and "'ghost'" in messages



@pytest.mark.parametrize("train_backbone", [False, True])
def test_a_given_score_range_is_checked_on_the_images_kept(image_files, tmp_path,
                                                           train_backbone):
    # A skipped image's score 9 failed score_range=(1, 6) before the image was found
    # unreadable; a readable image's score outside it still fails.
    X = image_files[:6] * 2 + [str(tmp_path / "gone.jpg")]
    y = np.r_[np.tile(np.arange(1.0, 7.0), 2), 9.0]
    groups = [*["a"] * 6, *["b"] * 7]
    params = dict(SMALL, train_backbone=train_backbone, score_range=(1, 6))
    with pytest.warns(UserWarning, match="gone.jpg"):
        meta = MetaAestheticRegressor(**params, on_error="skip").fit(X, y, groups=groups)
    assert meta.score_range_ == (1.0, 6.0)
    y[0] = 7.0
    with pytest.warns(UserWarning, match="gone.jpg"), \
            pytest.raises(ValueError, match=r"1 score\(s\) lie outside score_range"):
        MetaAestheticRegressor(**params, on_error="skip").fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"2 score\(s\) lie outside score_range"):
        MetaAestheticRegressor(**params).fit(X, y, groups=groups)

def test_a_photo_over_pillows_pixel_limit_says_how_to_read_it(image_files, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40 x 48 is over twice that
    with pytest.raises(ValueError, match=r"img_01.jpg: .* raise that limit .* on the command "
                                         r"line, save a smaller copy"):
        embed_images([image_files[1]], backbone="tiny_cnn")
    with pytest.raises(ValueError, match=r"img_01.jpg: .* raise that limit"):
        load_image(image_files[1])


def test_a_file_edited_in_place_with_its_date_kept_is_embedded_again(tmp_path):
    # the cache key was path, modification time and size: an edit keeping all three
    # (cp -p of a same-sized file, a metadata editor preserving the date) was served
    # the old file's embedding from cache_dir
    rng = np.random.RandomState(0)
    a, b = (tmp_path / "a.bmp", tmp_path / "b.bmp")  # uncompressed: the same size
    for path in (a, b):
        Image.fromarray(rng.randint(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    target = tmp_path / "photo.bmp"
    target.write_bytes(a.read_bytes())
    cache = tmp_path / "cache"
    first = _embed([str(target)], cache_dir=cache)
    stat = os.stat(target)
    target.write_bytes(b.read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(target).st_size == stat.st_size
    again = _embed([str(target)], cache_dir=cache)
    fresh = _embed([str(b)])
    assert not np.allclose(first, fresh)
    np.testing.assert_array_equal(again, fresh)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_one_error_names_every_missing_or_broken_file(image_files, tmp_path, train_backbone):
    # Only the first bad file was named: a folder with three took three reruns to fix.
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    X = list(image_files[:8])
    X[2], X[5] = str(tmp_path / "gone_a.jpg"), str(tmp_path / "gone_b.jpg")
    X[6] = str(broken)
    y = np.tile(np.arange(1.0, 9.0), 2)
    groups = np.repeat(["a", "b"], 8)
    meta = MetaAestheticRegressor(**{**SMALL, "train_backbone": train_backbone})
    with pytest.raises(ValueError if train_backbone else FileNotFoundError) as info:
        meta.fit(X * 2, y, groups=groups)
    # Head-only mode names every file it cannot open before embedding any; decoding
    # (which finds broken.jpg) comes after. The whole network decodes all up front.
    names = ["gone_a.jpg", "gone_b.jpg"] + (["broken.jpg"] if train_backbone else [])
    assert all(name in str(info.value) for name in names), str(info.value)
    assert str(info.value).count("gone_a.jpg") == 1  # each file once, though rated twice


def test_head_only_names_every_broken_file_in_one_error(image_files, tmp_path):
    # Head-only mode stopped at the first file it could not decode (the whole network
    # named them all): a folder with three bad files took three reruns to fix.
    X = list(image_files[:9])
    for k in (1, 4, 8):  # in the first, second and last batch of 3
        (tmp_path / f"broken{k}.jpg").write_bytes(b"not a jpeg")
        X[k] = str(tmp_path / f"broken{k}.jpg")
    y = np.tile(np.arange(1.0, 10.0), 2)
    groups = np.repeat(["a", "b"], 9)
    with pytest.raises(ValueError, match=r"^3 images cannot be read: .*broken1\.jpg.*"
                                         r"broken4\.jpg.*broken8\.jpg.*on_error='skip'"):
        MetaAestheticRegressor(**SMALL, batch_size=3).fit(X * 2, y, groups=groups)
    # "pass on_error='skip'": embed_images and the baselines take no such parameter, and
    # personalize takes it as the prior's setting
    from sklearn_piaa import embed_images

    with pytest.raises(ValueError, match=r"on_error='skip' \(a MetaAestheticRegressor's "
                                         r"setting: set_params\(on_error='skip'\) on a "
                                         r"fitted prior too; --on-error skip"):
        embed_images(X, backbone="tiny_cnn")


def test_a_folder_given_as_an_image_is_called_a_folder(image_files, tmp_path):
    # "image file not found: .../photos": it exists, it is a folder
    from sklearn_piaa import PIAAWarning

    folder = os.path.dirname(image_files[0])
    meta = MetaAestheticRegressor(**SMALL).fit(image_files[:8] * 2, np.arange(16.0) % 5,
                                               groups=np.repeat(["a", "b"], 8))
    with pytest.raises(IsADirectoryError, match=rf"^{folder} is a folder, not an image "
                                                r"file: pass its image files \(e.g. sorted"):
        meta.predict([folder])
    for load in (load_image, lambda x: ImageEmbedder(load_backbone("tiny_cnn"), "cpu")([x])):
        with pytest.raises(IsADirectoryError, match="is a folder"):
            load(folder)
    # said with the missing files, before any decoding; each of its kind, and together
    # a FileNotFoundError, as a folder among missing files was before it had its words
    with pytest.raises(FileNotFoundError, match=r"2 images cannot be read: .* is a "
                                                "folder.*; image file not found"):
        meta.predict([folder, image_files[0], str(tmp_path / "gone.jpg")])
    with pytest.raises(IsADirectoryError, match=r"2 images cannot be read: .* is a folder"):
        meta.predict([folder, folder + os.sep])
    meta.set_params(on_error="skip")
    with pytest.warns(PIAAWarning, match="is a folder, not an image file"):
        scores = meta.predict([folder, image_files[0]])
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


def test_an_image_url_is_named_as_given_and_refused_as_a_url(image_files, tmp_path):
    # "image file not found: <cwd>/https:/example.com/a.jpg"
    from sklearn_piaa._features import run_keys

    meta = MetaAestheticRegressor(**SMALL).fit(image_files[:8] * 2, np.arange(16.0) % 5,
                                               groups=np.repeat(["a", "b"], 8))
    url = "https://example.com/a.jpg"
    for call in (meta.predict, lambda X: load_image(X[0]), run_keys):
        with pytest.raises(FileNotFoundError, match=f"^{url}: URLs are not supported: "
                                                    "download the images and give their "
                                                    "local paths$"):
            call([url])


def test_whole_network_fit_decodes_each_file_once_up_front(image_files, monkeypatch):
    # The check before training decoded a file once per rating of it (5-30 times in a
    # rater table).
    from sklearn_piaa import _features

    calls = []
    real = _features._draft
    monkeypatch.setattr(_features, "_draft", lambda x, size: calls.append(x) or real(x, size))
    assert _features.unreadable_images(image_files * 3, 32, "raise") == {}
    assert sorted(calls) == sorted(image_files)


def test_arrays_of_equal_bytes_but_other_shapes_are_embedded_apart():
    rng = np.random.RandomState(0)
    wide = rng.randint(0, 256, (40, 48, 3)).astype(np.uint8)
    tall = wide.reshape(48, 40, 3)  # the same bytes, another picture
    together = _embed([wide, tall])
    assert not np.allclose(together[0], together[1])
    np.testing.assert_allclose(together[1], _embed([tall])[0], rtol=1e-5, atol=1e-7)


def test_pil_images_of_equal_pixels_but_other_orientation_are_embedded_apart(tmp_path):
    path = _rotated_jpeg(tmp_path)
    with Image.open(path) as rotated:
        rotated.load()
        plain = Image.fromarray(np.asarray(rotated))  # same pixels, no orientation
        together = _embed([rotated, plain])
    alone = _embed([plain])
    # one cached row for both: the upright one was served the rotated one's embedding
    assert not np.allclose(together[0], together[1])
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-7)


def test_a_cached_embedding_of_nans_is_embedded_again(image_files, tmp_path):
    cache = tmp_path / "cache"
    first = _embed(image_files[:1], cache_dir=cache)
    entry, = glob.glob(os.path.join(cache, "*", "*.npy"))
    np.save(entry, np.full(first.shape[1], np.nan, dtype=np.float32))  # a damaged entry
    again = _embed(image_files[:1], cache_dir=cache)
    assert np.isfinite(again).all()
    np.testing.assert_allclose(again, first, rtol=1e-6)


def test_a_cached_embedding_of_another_width_is_embedded_again(image_files, tmp_path):
    cache = tmp_path / "cache"
    first = _embed(image_files[:1], cache_dir=cache)
    entry, = glob.glob(os.path.join(cache, "*", "*.npy"))
    np.save(entry, np.zeros(first.shape[1] + 1, dtype=np.float32))  # a damaged entry
    again = _embed(image_files[:1], cache_dir=cache)
    assert np.isfinite(again).all()
    np.testing.assert_allclose(again, first, rtol=1e-6)


def test_user_backbones_that_scale_otherwise_do_not_share_cached_embeddings(image_files,
                                                                          tmp_path):
    cpu = torch.device("cpu")
    plain = Backbone(torch.nn.AdaptiveAvgPool2d(1), out_features=3, input_size=32,
                     name="mine", std=(0.5, 0.5, 0.5))
    halved = Backbone(torch.nn.AdaptiveAvgPool2d(1), out_features=3, input_size=32,
                      name="mine", std=(1.0, 1.0, 1.0))
    cache = tmp_path / "cache"
    first = ImageEmbedder(plain, cpu, cache_dir=cache).transform(image_files)
    cached = ImageEmbedder(halved, cpu, cache_dir=cache).transform(image_files)
    fresh = ImageEmbedder(halved, cpu).transform(image_files)
    assert not np.allclose(first, fresh)
    np.testing.assert_allclose(cached, fresh, rtol=1e-6)
