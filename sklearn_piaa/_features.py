"""From what the user passes as X to what a network eats.

Images are decoded once, preprocessed the ImageNet way and, in head-only mode, embedded
by the frozen backbone once: embeddings are cached in memory and optionally on disk, keyed
by file path + modification time + size, or by pixel content for in-memory images.
"""

import contextlib
import hashlib
import os
import secrets
import stat
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ._device import autocast, cpu_copies, usable
from ._inputs import (
    FEATURES,
    as_indexable,
    check_cache_dir,
    check_feature_names,
    check_finite_features,
    check_seed,
    float_features,
    input_kind,
    is_count,
    not_uint8,
    take,
)
from ._io import (
    STALE_WRITE_SECONDS,
    check_writable_dir,
    folder_path,
    remove_unfinished_writes,
    write_and_rename,
)
from ._messages import NO_URLS, listing, looks_like_url, row_numbers
from ._progress import progress
from ._warnings import warn_caller
from .nn.backbones import as_built
from .nn.fold import fold_batchnorm

__all__ = [
    "load_image",
    "loaded",
    "image_tensor",
    "image_pixels",
    "normalize_pixels",
    "random_crop",
    "decode_threads",
    "cpu_forward_batch",
    "image_reader",
    "thread_map",
    "ImageDataset",
    "FAR_NORM",
    "SATURATES",
    "SCALE_FAR_ROWS",
    "FeatureInput",
    "ImageInput",
    "far_rows_checked",
    "ImageEmbedder",
    "embed_images",
]


# Decoded images a training set keeps in memory (about 200 MB at 224 px): a rater's
# images are decoded once, not once per fine-tuning epoch.
DECODED_CACHE = 1024


# Pillow asserts when a lazily opened image is used after its file was closed (Pillow 10.0
# reads from the missing file instead: AttributeError on None).
_CLOSED = ("cannot read {}: the image is closed (opened lazily with Image.open and used "
           "after its file was closed, e.g. outside its `with` block); call .load() or "
           ".copy() while it is open, or pass the file path.")
# What Pillow raises for a file it cannot decode: SyntaxError for a broken PNG chunk.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                  Image.DecompressionBombError)
# Pillow decodes a lazily opened image in place, from its file; two threads loading one
# image object at once interleave their reads: other pixels, silently, or odd errors.
# One lock per image object (striped by id: images are not hashable).
_LOAD_LOCKS = tuple(threading.Lock() for _ in range(64))


def _reason(exc):
    """Why Pillow could not read a file, with what to do where the user can do something."""
    if isinstance(exc, Image.DecompressionBombError):
        # a real 200-megapixel photo trips Pillow's guard as a hostile file would
        return (f"{exc} Pillow refuses images over twice PIL.Image.MAX_IMAGE_PIXELS; if "
                "the file is a photo you trust, raise that limit (or set it to None) in "
                "Python before the call, or, on the command line, save a smaller copy of "
                "the photo.")
    return str(exc)


#: What decoding an image raises for a bad one; ``on_error="skip"`` leaves these out.
IMAGE_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError)


def _no_image_file(path, shown=None):
    """The error for an image ``path`` that names no file: what it names instead, if
    anything (a folder said "image file not found", though it exists; a URL came out
    mangled). ``shown``: how a missing file is named, where not as ``path``."""
    if looks_like_url(path):
        return FileNotFoundError(f"{path}: {NO_URLS}")
    if os.path.isdir(path):
        pattern = os.path.join(os.fsdecode(path), "*.jpg")
        return IsADirectoryError(
            f"{path} is a folder, not an image file: pass its image files (e.g. "
            f"sorted(glob.glob({pattern!r}))), or give the folder to sklearn-piaa predict, "
            "which scores the images in it")
    return FileNotFoundError(f"image file not found: {path if shown is None else shown}")


def to_rgb(img, copy=True):
    """An RGB copy of a PIL image of any mode, with values on the 8-bit scale.

    Pillow's own ``convert("RGB")`` clips 16-bit and 32-bit greyscale at 255 (a
    16-bit photo turns almost white) and drops transparency, exposing whatever colour
    hides under transparent pixels. Here wide greyscale is rescaled to 0-255 and
    transparent images are composited onto white; CMYK, palette and greyscale
    images are converted as usual.

    With ``copy=False`` an RGB image without transparency is returned as it is (for
    an image the caller owns, such as one it just decoded). An image of no pixels
    (width or height 0) raises a ValueError: resized, it would be a black image.
    """
    if not (img.width and img.height):
        # resized, it is a black image: embedded as one without a word
        raise ValueError(f"the image has no pixels ({img.width} x {img.height})")
    mode = img.mode
    if not copy and mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # The scale of "F" and "I" images is not stored: it is read from nearly all
        # their pixels, not the brightest one, which turned a float image in [0, 1]
        # with one pixel at 1.0001 (bicubic resizing overshoots) black, as 0-255
        top = float(np.nanpercentile(arr, 99.9)) if arr.size and np.isfinite(arr).any() \
            else 0.0
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "F" and top <= 1.0:
            arr = arr * 255.0  # a float image in [0, 1]
        elif mode == "I" and top > 65535:
            arr = arr / (np.iinfo(np.int32).max / 255.0)  # 32-bit samples
        elif mode == "I" and top > 255:
            arr = arr / 257.0  # 16-bit PNGs open as mode "I"
        grey = np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
        key = img.info.get("transparency")
        if isinstance(key, (int, float)):
            # a 16-bit PNG's colour key (tRNS), onto white as 8-bit images are: it
            # showed whatever the transparent pixels hid
            grey[np.asarray(img) == key] = 255
        return Image.fromarray(grey).convert("RGB")
    if ("transparency" in img.info and mode in ("P", "L", "RGB")) \
            or _rgba_palette(img):
        # A palette entry or a colour key (PNG tRNS, as PNG optimizers write) marks
        # the transparent pixels, or the palette holds alpha (Image.quantize of an
        # RGBA image, with nothing in info): Pillow's RGBA conversion turns it into
        # alpha.
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Pillow converts premultiplied "La" to "LA" only
        rgba = (img.convert("LA") if mode == "La" else img).convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _rgba_palette(img):
    """Whether `img` is a palette image whose palette carries alpha."""
    return img.mode == "P" and getattr(img.palette, "mode", None) == "RGBA"


def load_image(src):
    """Decode one image to an RGB PIL image, applying its EXIF orientation.

    Any Pillow mode is accepted (see :func:`to_rgb`).

    Parameters
    ----------
    src : str, path-like, PIL.Image.Image or ndarray of shape (H, W, 3) uint8

    Returns
    -------
    PIL.Image.Image
    """
    if isinstance(src, (str, os.PathLike)):
        path = _plain_path(src)
        if not os.path.isfile(path):
            raise _no_image_file(path)
        try:
            with Image.open(path) as img:
                return _own_upright_rgb(img)
        except _DECODE_ERRORS as exc:
            raise ValueError(f"cannot read image file {path}: {_reason(exc)}") from None
    if isinstance(src, Image.Image):
        loaded(src)
        try:
            if src.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even when upright
                src = ImageOps.exif_transpose(src)
            return to_rgb(src)
        except _DECODE_ERRORS as exc:
            raise ValueError(f"cannot read {_name(src)}: {exc}") from None
    arr = np.asarray(src)
    if arr.dtype != np.uint8:
        raise ValueError(not_uint8(arr, values=False))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be (H, W, 3); got shape {arr.shape}.")
    if not (arr.shape[0] and arr.shape[1]):
        raise ValueError(f"the image array has no pixels (shape {arr.shape}).")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:  # onto white, as a transparent file or PIL image is
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA"))
    return Image.fromarray(np.ascontiguousarray(arr))


def _plain_path(src):
    """``os.fspath(src)``, a NumPy string as a plain one: Pillow's messages show its repr."""
    path = os.fspath(src)
    return str(path) if isinstance(path, str) else path


def _own_upright_rgb(img):
    """A just-opened image file, decoded, turned upright and in RGB, changed in place.

    The image is the caller's own: the copies that ``exif_transpose`` makes of an
    upright image and ``convert("RGB")`` of an RGB one would be thrown away (about
    0.1 ms of a 0.7 ms decode, a 320 x 240 JPEG).
    """
    # Decoded here, while the file is open: Pillow 10.0's in-place exif_transpose
    # leaves an upright image undecoded, and the caller closes the file.
    img.load()
    ImageOps.exif_transpose(img, in_place=True)
    return to_rgb(img, copy=False)


def loaded(img):
    """Decode a PIL image that was opened lazily, once, and safely from any thread.

    Parameters
    ----------
    img : PIL.Image.Image

    Returns
    -------
    PIL.Image.Image
        ``img`` itself, its pixels in memory.

    Raises
    ------
    ValueError
        When the image cannot be decoded (a truncated or broken file) or is closed.
    """
    try:  # an image from Image.open decodes lazily: a truncated file fails here
        # id() >> 4: objects sit on 16-byte boundaries, and id % 64 would use 4 locks.
        with _LOAD_LOCKS[(id(img) >> 4) % len(_LOAD_LOCKS)]:
            img.load()
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot read {_name(img)}: {exc}") from None
    except AssertionError:
        raise ValueError(_CLOSED.format(_name(img))) from None
    except AttributeError:
        if getattr(img, "fp", True) is not None:  # not a closed file's image
            raise
        raise ValueError(_CLOSED.format(_name(img))) from None
    return img


def decode_threads():
    """How many threads decode images at once: the cores this process may use, at most 16.

    Pillow's decoding and resizing release the GIL, so threads add speed (2.7-2.9x on
    16 cores, measured); a GPU consumes images far faster than one core decodes them.

    Returns
    -------
    int
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def cpu_forward_batch():
    """Images per forward pass of a backbone in inference on a CPU: 2 per thread.

    Small batches keep a convolutional network's activations in the cores' caches: on
    a 2-core CPU, EfficientNet-Lite0 ran at about 115 images/s in batches of 4 against
    70 in batches of 32 and 60 in batches of 64 (how much depends on the other load on
    the machine's memory: 1.1-1.9x measured).

    Returns
    -------
    int
    """
    return 2 * torch.get_num_threads()


def _forward_part(net, x):
    """``net(x)``, a batch of one image run as two.

    Alone, an image's embedding came out a float32 step away from the same image's in
    a batch of two or more (other kernels), so that what a cache held, and the prior
    fitted on it, hung on how many images each call embedded (``n_jobs``, a batch's
    odd last image): one image more costs less than a forward pass apart.
    """
    if len(x) != 1:
        return net(x)
    return net(x.expand(2, *x.shape[1:]).contiguous(memory_format=torch.channels_last))[:1]


def thread_map(fn, *iterables, threads=None):
    """``list(map(fn, *iterables))``, run by up to ``threads`` threads.

    Parameters
    ----------
    fn : callable
    *iterables : iterables of equal length
        Arguments of ``fn``.
    threads : int, default=None
        ``None`` uses :func:`decode_threads`.

    Returns
    -------
    list
        The results, in input order. The first exception, in input order, is raised.
    """
    args = [list(it) for it in iterables]
    threads = min(decode_threads() if threads is None else threads, len(args[0]))
    if threads <= 1:
        return list(map(fn, *args))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, *args))


def _train_side(size):
    # Training images are resized to 8/7 of the input size (256 for 224), then cropped.
    return int(round(size * 8 / 7))


def random_crop(size, generator=None):
    """The training augmentation's random draws for one image.

    Drawn apart from the decoding, so that images decoded by several threads get the
    same crops, in the same order, as one after the other.

    Parameters
    ----------
    size : int
        The network's input size.
    generator : torch.Generator, default=None
        ``None`` draws from torch's global generator.

    Returns
    -------
    (int, int, bool)
        ``(top, left, flip)``.
    """
    big = _train_side(size)
    top, left = (int(v) for v in torch.randint(0, big - size + 1, (2,), generator=generator))
    return top, left, float(torch.rand((), generator=generator)) < 0.5


def image_pixels(img, size, train=False, generator=None, crop=None):
    """An RGB image resized (and for training, randomly cropped and flipped): uint8 (H, W, 3).

    Test-time images are resized to ``size x size``; training images are resized to
    ``size * 8/7`` (256 for 224) and cropped at a random position, then flipped with
    probability 1/2, as in the BLG-PIAA reference code.

    Parameters
    ----------
    img : PIL.Image.Image
        An RGB image.
    size : int
    train : bool, default=False
    generator : torch.Generator, default=None
        Draws the crop when ``crop`` is not given.
    crop : (int, int, bool), default=None
        ``(top, left, flip)`` (see :func:`random_crop`) instead of drawing them.

    Returns
    -------
    ndarray of shape (size, size, 3), uint8
    """
    return _crop(_resize(img, size, train), size, train, generator, crop)


def _resize(img, size, train):
    side = _train_side(size) if train else size
    return img.resize((side, side), Image.BILINEAR)


def _crop(img, size, train, generator=None, crop=None):
    if train:
        top, left, flip = random_crop(size, generator) if crop is None else crop
        img = img.crop((left, top, left + size, top + size))
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img)


def image_tensor(img, size, mean, std, train=False, generator=None, crop=None):
    """:func:`image_pixels`, normalized: a float32 tensor (3, H, W)."""
    arr = image_pixels(img, size, train, generator, crop).astype(np.float32) * (1.0 / 255.0)
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _draft(src, size):
    # JPEG can decode at 1/2, 1/4, 1/8 scale; asking for at least `size` saves most of
    # the decoding time of large photos without losing resolution the network uses.
    img = load_image(src) if not isinstance(src, (str, os.PathLike)) else None
    if img is not None:
        return img
    path = _plain_path(src)
    if not os.path.isfile(path):
        raise _no_image_file(path)
    try:
        with Image.open(path) as raw:
            if raw.format == "JPEG":
                raw.draft("RGB", (size * 8 // 7, size * 8 // 7))
            return _own_upright_rgb(raw)
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot read image file {path}: {_reason(exc)}") from None


def normalize_pixels(x, mean, std):
    """8-bit pixels, on any device, to the network's float32 input.

    The same operations in the same order as :func:`image_tensor`: the same numbers.

    Parameters
    ----------
    x : uint8 tensor of shape (N, 3, H, W)
    mean, std : sequence of 3 floats

    Returns
    -------
    float32 tensor of shape (N, 3, H, W), on ``x``'s device
        In ``x``'s memory layout: the permuted view of an (N, H, W, 3) stack gives a
        channels-last batch, the layout the backbones run in, with no copy to make.
    """
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device)
    std = torch.tensor(std, dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1)
    if rows.is_contiguous():
        # Channels-last: each image row is w * 3 values, pixel after pixel. Broadcasting
        # a (3,) per-pixel pattern runs an inner loop of 3 values; the same mean and std
        # tiled along the row (w * 3) run vectorized: 2.7x faster (batches of 4 at 224
        # px, a 2-core CPU), the same operations on the same numbers.
        out = rows.to(torch.float32, copy=True).view(n, h, w * c)
        out.mul_(1.0 / 255.0).sub_(mean.repeat(w)).div_(std.repeat(w))
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    # In place on one new tensor: 2.7x faster than a new tensor per operation (32
    # images at 224 px), the same numbers.
    out = x.to(torch.float32, copy=True)
    return out.mul_(1.0 / 255.0).sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


class ImageDataset(torch.utils.data.Dataset):
    """Images (paths, PIL images or arrays) with optional scores, decoded on access.

    Parameters
    ----------
    X : list or ndarray
        Images.
    y : array-like or None
    size : int
    mean, std : tuple of float
    train : bool, default=False
        Apply the training augmentation (random crop, horizontal flip).
    on_error : {"raise", "skip"}, default="raise"
        ``"skip"``: an unreadable image yields a blank tensor and its index and reason
        are recorded in ``failed``, for the caller to mask (predictions become NaN).
    threads : int, default=None
        Threads that decode a batch (:meth:`__getitems__`, :meth:`load`); ``None``: as
        many as :func:`decode_threads` gives.
    cache : int, default=0
        Keep up to this many decoded, resized images in memory (about 200 kB each at
        224 px): an image seen again -- the next epoch of fine-tuning, the next outer
        iteration -- is only cropped, not decoded again.
    as_bytes : bool, default=False
        Items are 8-bit pixels (3, H, W), to be normalized where the network runs
        (:func:`normalize_pixels`; :class:`ImageInput` does it for the skorch nets):
        a quarter of the bytes to stack and move, and no float work on the CPU.

    Attributes
    ----------
    failed : dict
        Index -> reason, for images that could not be read (``on_error="skip"``).
    """

    def __init__(self, X, y, size, mean, std, train=False, on_error="raise", threads=None,
                 cache=0, as_bytes=False):
        self.X = as_indexable(X)
        self.y = None if y is None else np.asarray(y, dtype=np.float32).reshape(-1, 1)
        self.size, self.mean, self.std, self.train = size, mean, std, train
        self.on_error, self.threads, self.cache = on_error, threads, cache
        self.as_bytes = as_bytes
        self.failed = {}
        self._decoded = {}

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices):
        """Items ``indices`` as ``(x, y)`` tensors, decoded by several threads.

        torch's ``DataLoader`` fetches whole batches through this. The random crops are
        drawn first, in order, so the batch equals ``[self[i] for i in indices]`` drawn
        from the same random state.
        """
        pixels = self.pixels(indices)
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2) if self.as_bytes
             else self.normalize(pixels))
        zero = torch.zeros(1)
        return [(x[j], zero if self.y is None else torch.from_numpy(self.y[i]))
                for j, i in enumerate(indices)]

    def draw_crops(self, n, rng):
        """``n`` training crops (see :func:`random_crop`) drawn from a NumPy ``rng``.

        Parameters
        ----------
        n : int
        rng : numpy.random.RandomState

        Returns
        -------
        list of (int, int, bool)
            ``(top, left, flip)`` for each image, for :meth:`pixels`.
        """
        corners = rng.randint(0, _train_side(self.size) - self.size + 1, size=(n, 2))
        flips = rng.rand(n) < 0.5
        return [(int(t), int(u), bool(f)) for (t, u), f in zip(corners, flips)]

    def pixels(self, indices, crops=None):
        """Images ``indices`` decoded, resized and (training) cropped: uint8 (N, H, W, 3).

        Runs on several threads.

        Parameters
        ----------
        indices : sequence of int
        crops : list of (int, int, bool), default=None
            Each image's crop and flip (training only; see :meth:`draw_crops`); by
            default drawn from torch's RNG.

        Returns
        -------
        ndarray of shape (N, H, W, 3), uint8
        """
        if self.train and crops is None:
            crops = [random_crop(self.size) for _ in indices]
        return np.stack(thread_map(self._pixels, indices, crops or [None] * len(indices),
                                   threads=self.threads))

    def normalize(self, pixels, device="cpu"):
        """:meth:`pixels` as a normalized float32 batch (N, 3, H, W) on ``device``.

        The pixels travel as bytes, a quarter of the floats' size, and are normalized
        there (:func:`normalize_pixels`).

        Parameters
        ----------
        pixels : ndarray of shape (N, H, W, 3), uint8
        device : str or torch.device, default="cpu"

        Returns
        -------
        float32 tensor of shape (N, 3, H, W)
        """
        x = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2)
        return normalize_pixels(x, self.mean, self.std)

    def load(self, indices, crops=None, device="cpu"):
        """:meth:`pixels` then :meth:`normalize`: a float32 batch on ``device``.

        Parameters
        ----------
        indices : sequence of int
        crops : list of (int, int, bool), default=None
        device : str or torch.device, default="cpu"

        Returns
        -------
        float32 tensor of shape (N, 3, H, W)
        """
        return self.normalize(self.pixels(indices, crops), device)

    def _pixels(self, i, crop=None):
        key = (int(i), bool(self.train))
        img = self._decoded.get(key)
        if img is None:
            try:
                img = _draft(self.X[i], self.size)
            except IMAGE_ERRORS as exc:
                if self.on_error == "raise":
                    raise
                self.failed[int(i)] = str(exc)
                img = Image.new("RGB", (self.size, self.size))
            img = _resize(img, self.size, self.train)
            if len(self._decoded) < self.cache:
                self._decoded[key] = img
        return _crop(img, self.size, self.train, crop=crop)


def _decode_error(image, size):
    """The error decoding ``image`` (at reduced size where JPEG allows) raises, or None."""
    try:
        _draft(image, size)
    except IMAGE_ERRORS as exc:
        return exc
    return None


def _holds_text(X):
    """Whether the 2-D ``X`` holds text (paths) rather than numbers."""
    arr = np.asarray(X)
    if arr.dtype.kind in "US":
        return True
    return arr.dtype.kind == "O" and arr.ndim == 2 and any(
        isinstance(v, (str, bytes, os.PathLike)) for v in arr[0])


def unreadable_images(X, size=224, on_error="skip"):
    """Indices and reasons of the images in ``X`` that cannot be decoded.

    Decodes every image once (at reduced size where JPEG allows), so that a
    whole-network run finds a bad file before training rather than hours into it.

    Parameters
    ----------
    X : list or ndarray
        Images.
    size : int, default=224
    on_error : {"raise", "skip"}, default="skip"
        ``"raise"``: raise one error naming every bad image (see
        :func:`raise_unreadable`) instead of listing.

    Returns
    -------
    dict
        Index -> reason.
    """
    if input_kind(X) == FEATURES:
        return {}
    X = as_indexable(X)
    # Arrays were validated when converted; files and PIL images (which Image.open
    # decodes lazily, so a truncated file fails only when read) are decoded.
    files = [i for i in range(len(X)) if isinstance(X[i], (str, os.PathLike, Image.Image))]
    # Each distinct file once: a rater table names each image once per rater (5-30 times).
    first = {}
    for i in files:
        first.setdefault(_identity(X[i]), i)

    found = dict(zip(first.values(), thread_map(lambda i: _decode_error(X[i], size),
                                                list(first.values()))))
    if on_error == "raise":
        raise_unreadable([exc for exc in found.values() if exc is not None])
    reasons = {i: found[first[_identity(X[i])]] for i in files}
    return {i: str(exc) for i, exc in reasons.items() if exc is not None}


def _identity(image):
    """A file's path, or a PIL image's identity: what one decoding serves."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else id(image)


def raise_unreadable(errors):
    """Raise one error for all of ``errors`` (those of the images that cannot be read).

    A user who fixes a folder of images one error at a time reruns once per bad file;
    one error names them all (the first ten).

    Parameters
    ----------
    errors : list of Exception
        ``FileNotFoundError``, ``IsADirectoryError`` or ``ValueError`` of each bad image,
        in input order; nothing is raised when empty. A single error is raised as it is.
    """
    if len(errors) == 1:
        raise errors[0]
    if errors:
        # Folders only: IsADirectoryError. Missing files, with or without folders:
        # FileNotFoundError, as a folder among them was before it had its own message.
        kind = next((k for k, allowed in ((IsADirectoryError, IsADirectoryError),
                                          (FileNotFoundError, (FileNotFoundError,
                                                               IsADirectoryError)))
                     if all(isinstance(e, allowed) for e in errors)), ValueError)
        reasons = [str(e).rstrip(".") for e in errors]
        # one reason for all (float pixels in a list of arrays): said once, not ten times
        said = (f"each: {reasons[0]}" if len(set(reasons)) == 1
                else listing(reasons, sep="; "))
        raise kind(f"{len(errors)} images cannot be read: " + said
                   + ". Fix or remove them, or leave them out with on_error='skip' (a "
                   "MetaAestheticRegressor's setting: set_params(on_error='skip') on a "
                   "fitted prior too; --on-error skip on the command line).")


def unreadable_rows(X, size, on_error):
    """Mask of the rows of ``X`` whose image cannot be decoded; warns naming them.

    With ``on_error="raise"`` the bad files raise instead (:func:`raise_unreadable`).
    """
    failed = unreadable_images(X, size, on_error)
    bad = np.zeros(len(as_indexable(X)), dtype=bool)
    bad[list(failed)] = True
    if failed:
        reasons = list(dict.fromkeys(failed.values()))  # an image rated many times
        warn_caller(f"{len(reasons)} unreadable image(s) left out, with their "
                    f"{len(failed)} rating(s) (on_error='skip'): "
                    + listing(reasons, sep="; "))
    return bad


def image_reader(model):
    """The object that decodes a fitted model's images.

    Parameters
    ----------
    model : estimator
        A fitted prior (meta-learned or baseline).

    Returns
    -------
    object or None
        Its input adapter, or the embedder inside it (PAM's adapter measures attributes
        around one); ``None`` before fit.
    """
    adapter = getattr(model, "input_", None)
    return getattr(adapter, "embedder", adapter)


def drop_unreadable(adapter, X, y, on_error, return_kept=False, none_ok=False):
    """One rater's ``X, y`` without unreadable images when ``on_error="skip"``.

    ``adapter`` (an :class:`ImageEmbedder` or :class:`ImageInput`) would turn them into
    NaN embeddings or blank images, which prediction reports as NaN but training would
    learn from. Through an embedder ``X`` comes back as its embeddings. With
    ``return_kept``, the positions of the rows kept come third. When no image can be
    read a ValueError says so, unless ``none_ok`` (then no row is kept).
    """
    kept = np.arange(len(y))
    if on_error != "skip" or input_kind(X) == FEATURES:
        return (X, y, kept) if return_kept else (X, y)
    X = as_indexable(X)  # rows by position: a pandas Series' X[i] is by index label
    if isinstance(adapter, ImageEmbedder):
        X = adapter.transform(X)  # warns naming the unreadable images
        bad = np.isnan(X[:, 0])
    else:
        bad = unreadable_rows(X, adapter.size, "skip")
    if bad.all() and not none_ok:
        raise ValueError("none of the rater's images could be read (on_error='skip').")
    if bad.any():
        kept = np.flatnonzero(~bad)
        X, y = take(X, kept), y[kept]
    return (X, y, kept) if return_kept else (X, y)


#: Rows of features whose norm is above this many times the largest norm of the rows a
#: model was fitted on are named where it scores or fine-tunes on them: the head's
#: sigmoid saturates there (3 times gave scores of 1.23-4.52 on 1-5, 10 times 1.0005-4.997
#: and 1000 times the two ends only, on features fitted at norms up to 4.5). A backbone's
#: embeddings of new images do not get there: EfficientNet-Lite0's lie in 0-6 each.
FAR_NORM = 10.0

#: What rows far outside the features fitted on get.
SATURATES = ("The head saturates on them and scores them at the ends of the score range "
             "(or all alike).")
#: What to do about them.
SCALE_FAR_ROWS = ("Scale them as the features fitted on were (the same StandardScaler, "
                  "say), or fit on features like them.")

# Set while a method of the package personalizes, after it named the far rows once: the
# nets it fits and the predictions its checks make read the same rows again.
_FAR_CHECKED = threading.local()


@contextlib.contextmanager
def far_rows_checked():
    """A context in which feature inputs do not name far rows (already named)."""
    was = getattr(_FAR_CHECKED, "on", False)
    _FAR_CHECKED.on = True
    try:
        yield
    finally:
        _FAR_CHECKED.on = was


class FeatureInput:
    """Checks precomputed features ``(N, D)`` and hands them on as float32.

    Parameters
    ----------
    n_features : int
        ``D`` seen at fit time.
    owner : str, default="MetaAestheticRegressor"
        The fitted model's class name, for error messages.
    feature_names : sequence of str, default=None
        The DataFrame column names seen at fit time, if any: features given under
        other names or in another order are refused (see
        :func:`~sklearn_piaa._inputs.check_feature_names`).

    Attributes
    ----------
    largest_norm : float or None
        The largest row norm of the features fitted on, set by ``fit`` (None: not
        recorded, as in models of earlier versions): rows more than :data:`FAR_NORM`
        times as large are named in a warning.
    """

    largest_norm = None  # a class default: adapters pickled before it have none

    def __init__(self, n_features, owner="MetaAestheticRegressor", feature_names=None):
        self.n_features = n_features
        self.owner = owner
        self.feature_names = feature_names

    def __call__(self, X, y=None):
        kind = input_kind(X)
        if kind != FEATURES:
            raise ValueError(
                "this model was fitted on precomputed features (backbone=None), so X must be "
                "a 2-D feature array; got images. Refit with a backbone to use images."
            )
        # Adapters pickled before feature names were kept have neither attribute.
        check_feature_names(getattr(self, "feature_names", None), X,
                            getattr(self, "owner", "MetaAestheticRegressor"))
        X = float_features(X)
        # The rows' squared norms, in one pass that finds NaN and infinity too (a row
        # holding one sums to one): faster than np.isfinite's test of every value.
        with np.errstate(over="ignore", invalid="ignore"):
            squares = np.einsum("ij,ij->i", X, X)
        if not np.isfinite(squares).all():
            check_finite_features(X)  # else finite values whose squares overflow float32
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but "
                f"{getattr(self, 'owner', 'MetaAestheticRegressor')} is expecting "
                f"{self.n_features} features as input (the width seen in fit)."
            )
        if self.largest_norm is not None and not getattr(_FAR_CHECKED, "on", False):
            self._warn_if_far(X, squares)
        # torch cannot wrap read-only memory (memmaps) without a warning, nor views with
        # negative strides (X[::-1], np.flip) at all; copy those.
        return X if X.flags.writeable and min(X.strides) >= 0 else X.copy()

    def far_rows(self, X, squares=None):
        """A sentence naming the rows of ``X`` far larger than any fitted on, or "".

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32
            Checked features.
        squares : ndarray of shape (n_rows,), default=None
            Their rows' squared norms, where the caller has them.

        Returns
        -------
        str
            "" where no row is more than :data:`FAR_NORM` times the largest norm
            fitted on, or where none was recorded.
        """
        if self.largest_norm is None:
            return ""
        if squares is None:
            with np.errstate(over="ignore"):
                squares = np.einsum("ij,ij->i", X, X)
        # the bound in float64: above a fitted norm of about 1.8e18 its square is beyond
        # float32 (and casting it there warned); inf, an overflowed row, is far
        far = ~(squares <= np.float64(FAR_NORM * self.largest_norm) ** 2)
        if not far.any():
            return ""
        rows = np.flatnonzero(far)
        norms = np.linalg.norm(X[rows].astype(np.float64), axis=1)
        return (f"{len(rows)} row(s) of X ({row_numbers(rows)}) lie far outside the "
                f"features the model was fitted on: norms up to {norms.max():.3g}, where "
                f"the largest in fit was {self.largest_norm:.3g}.")

    def _warn_if_far(self, X, squares):
        """Name the rows far larger than any fitted on: their scores saturate silently."""
        far = self.far_rows(X, squares)
        if far:
            warn_caller(f"{far} {SATURATES} {SCALE_FAR_ROWS}")


class ImageInput:
    """Turns images into an :class:`ImageDataset` for whole-network training.

    Parameters
    ----------
    size : int
    mean, std : tuple of float
    on_error : {"raise", "skip"}, default="raise"
        Passed to the :class:`ImageDataset`.
    """

    def __init__(self, size, mean, std, on_error="raise"):
        self.size, self.mean, self.std = size, mean, std
        self.on_error = on_error

    def __call__(self, X, y=None):
        if input_kind(X) == FEATURES:
            raise ValueError(
                "this model trains the whole network, so X must be images (paths, PIL "
                "images or uint8 arrays), not a 2-D feature array"
                + (f" (a table of {X.shape[1]} column(s): pass its column of image paths, "
                   "e.g. df['image'])." if hasattr(X, "columns") else ".")
            )
        # With scores it is a training set, read once per epoch: keep the decoded images.
        return ImageDataset(X, y, self.size, self.mean, self.std,
                            on_error=getattr(self, "on_error", "raise"),
                            cache=DECODED_CACHE if y is not None else 0, as_bytes=True)

    def normalize(self, x):
        """The datasets' 8-bit batches, on the network's device, as its float input."""
        return normalize_pixels(x, self.mean, self.std)


def _absolute(path):
    """``path`` made absolute, naming the file the system opens for it.

    ``os.path.abspath`` takes ``link/..`` for the folder holding the link, where the
    system goes to the link target's parent: a path stepping up is resolved, or one
    file's embedding was keyed, stat'ed and cached as another's. One the system cannot
    resolve (a missing folder, a file, before the ``..``) is kept as it is, so that its
    stat fails as opening it would (a lenient resolution skipped the missing folder
    and named the file beside it).
    """
    path = os.fspath(path)
    if ".." in os.fsdecode(path).replace("\\", "/").split("/"):
        try:
            return os.path.realpath(path, strict=True)
        except OSError:
            return os.path.join(os.getcwdb() if isinstance(path, bytes) else os.getcwd(),
                                path)
    return os.path.abspath(path)


def _content_key(src, ctime=True):
    """A key for an image: its pixels, or a file's path, dates and size.

    ``ctime=False`` leaves out the file's status-change time, which a ``chmod`` or a
    hard link changes too: for keys that must survive such handling (a whole-network
    checkpoint of hours), at the cost of not seeing an edit that kept the
    modification time and the size.
    """
    h = hashlib.blake2b(digest_size=16)
    if isinstance(src, (str, os.PathLike)):
        path = _absolute(src)
        try:
            st = os.stat(path)
        except OSError:
            raise _no_image_file(_plain_path(src), shown=path) from None
        if stat.S_ISDIR(st.st_mode):  # said with the missing files, before any decoding
            raise _no_image_file(_plain_path(src))
        # fsencode: a file name that is not UTF-8 (unzipped from a Latin-1 archive) is
        # still a name; the bytes are those of .encode() for every UTF-8 one.
        # st_ctime_ns: the kernel sets it on every write, and no tool can carry it over
        # as cp -p, rsync -t, archives and metadata editors keeping the date carry over
        # the modification time: an edited or replaced file is never taken for the old.
        changed = st.st_ctime_ns if ctime else ""
        h.update(os.fsencode(path)
                 + f"\0{st.st_mtime_ns}\0{changed}\0{st.st_size}".encode())
    elif isinstance(src, Image.Image):
        # The pixels alone are not the image: a palette image's colours live in its
        # palette and transparency, and EXIF orientation turns it.
        loaded(src)  # decoded once, by one thread (see loaded)
        h.update(f"{src.mode}{src.size}{src.info.get('transparency')!r}".encode())
        try:
            h.update(src.tobytes())
            if src.mode in ("P", "PA"):
                # an RGBA palette's alpha is part of the picture (see to_rgb)
                h.update(bytes(src.getpalette("RGBA" if _rgba_palette(src) else "RGB")
                               or []))
            h.update(repr(src.getexif().get(0x0112)).encode())
        except _DECODE_ERRORS as exc:
            raise ValueError(f"cannot read {_name(src)}: {exc}") from None
    else:
        arr = np.ascontiguousarray(src)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


#: What embedders of one frozen backbone share: its BatchNorm-folded copy and, per
#: precision, the embeddings made (an embedding depends on nothing else).
_FOLDED = weakref.WeakKeyDictionary()
_MEMOS = weakref.WeakKeyDictionary()


class _Memo(OrderedDict):
    """Embeddings held in memory by key, least recently used first, with their bound:
    shared, as the memo is, by every embedder of one backbone (a bound kept on each
    embedder was ignored by the others, which grew the memo past it).

    ``disks`` names, per key held, the cache folder the embedding is known to be in:
    an embedding held in memory and asked for by an embedder with another
    ``cache_dir`` (or one given after it was embedded) is written there too.
    """

    size = 100_000

    def __init__(self, *args):
        super().__init__(*args)
        self.disks = {}
        self._holds = []  # see holding
        self._lock = threading.Lock()

    def __reduce__(self):
        # rows and bound, without the lock and the holds of evaluations running here
        return type(self), (list(self.items()),), {"size": self.size}

    @property
    def bound(self):
        """How many embeddings the memo may hold now: ``size``, or more while held."""
        return max([int(self.size), *self._holds])

    @contextlib.contextmanager
    def holding(self, n):
        """Hold at least ``n`` embeddings while the block runs.

        Without touching ``size``, the bound every embedder of the backbone shares: an
        evaluation raised it and put back the value it read, and two at once left it
        raised for good (the second read the first's raise).
        """
        with self._lock:
            self._holds.append(int(n))
        try:
            yield
        finally:
            with self._lock:
                self._holds.remove(int(n))


#: Frozen backbones of loaded models, by everything that makes their embeddings.
_LOADED = weakref.WeakValueDictionary()
#: The same backbones of built-in names, by (fingerprint, name, device) alone.
_LOADED_BY_NAME = weakref.WeakValueDictionary()


def shared_backbone(backbone, fingerprint=None):
    """A loaded model's frozen ``backbone``, or an equal one already in use.

    Every model file holds its own backbone: ten users' nets personalized from one prior
    and loaded in one service held ten copies (about 50 MB each, with their folded
    copies) and embedded each image ten times. Equal backbones -- the same architecture,
    weights, preprocessing and device -- are the same function, so loaded models share
    one, with its folded copy and its embeddings. Never for a backbone being trained.

    Parameters
    ----------
    backbone : Backbone
    fingerprint : str, default=None
        Its weights' ``_module_fingerprint`` where the caller has it (hashing the
        weights again costs tens of milliseconds per load).

    Returns
    -------
    Backbone
    """
    b = backbone
    if fingerprint is None:
        fingerprint = _module_fingerprint(b)
    device = next(iter(b.parameters()), torch.empty(0)).device
    code = f"{type(b.features).__module__}.{type(b.features).__qualname__}"
    key = (fingerprint, code, repr(b.features), b.name, b.input_size,
           tuple(b.mean), tuple(b.std), b.out_features, str(device))
    found = _LOADED.get(key)
    if found is not None:
        return found
    _LOADED[key] = backbone
    if as_built(b):  # its name fixes the rest of the key (see loaded_backbone)
        _LOADED_BY_NAME[(fingerprint, b.name, str(device))] = backbone
    return backbone


def loaded_backbone(fingerprint, name, device):
    """The frozen backbone of a loaded model with these weights, or None.

    For a model file that stores only the fingerprint of a built-in backbone's shipped
    weights: its name fixes the architecture and preprocessing, so an equal backbone
    already in use (:func:`shared_backbone`) need not be built and checked again only
    to be dropped for it (0.26 s of a personalized net's 0.44 s load, EfficientNet-Lite0
    on a 2-core CPU: a service loading its users' nets on demand).

    Parameters
    ----------
    fingerprint : str
        The weights' ``_module_fingerprint``, as the file stores it.
    name : str
        A built-in backbone's name.
    device : str or torch.device

    Returns
    -------
    Backbone or None
    """
    device = torch.device(device)
    if device.type != "cpu" and device.index is None:
        # A backbone on "cuda" reports "cuda:0" (the current device): the key it was
        # shared under.
        try:
            device = torch.empty(0, device=device).device
        except (RuntimeError, AssertionError):  # no such device here: nothing loaded on it
            return None
    return _LOADED_BY_NAME.get((fingerprint, name, str(device)))


#: The version of the way images become embeddings (decoding, colour handling, resizing),
#: in the name of the on-disk cache's folder: raised with each change to it, so that no
#: embedding computed the old way is read as a new one (RGBA arrays embedded before
#: their transparent pixels were put on white were read from the cache unchanged).
CACHE_VERSION = 2


def backbone_fingerprint(backbone):
    """What makes a :class:`~sklearn_piaa.nn.Backbone`'s embeddings, as a hex string.

    Its weights, and for a user's module (not a built-in name, which fixes them) its
    code and preprocessing too: a parameter-free pooling backbone has no weights, and
    two modules of equal weights may compute or normalize otherwise.

    Parameters
    ----------
    backbone : Backbone

    Returns
    -------
    str
    """
    key = _module_fingerprint(backbone)
    # a built-in name with another input_size or normalization (set after
    # load_backbone) computes otherwise from the same weights: its cache and runs were
    # taken for the built-in's
    if not as_built(backbone):
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{type(backbone.features).__module__}."
                 f"{type(backbone.features).__qualname__}\0{backbone.features!r}\0"
                 f"{backbone.input_size}\0{backbone.mean}\0{backbone.std}\0"
                 f"{backbone.out_features}".encode())
        _hash_module_settings(h, backbone.features)
        key += h.hexdigest()
    return key


def _hash_module_settings(h, module):
    """Feed ``h`` what a module computes with besides its saved weights.

    Two instances of one class with equal weights that differ in a plain attribute
    (``pool="max"`` against ``"avg"``), a buffer kept out of ``state_dict`` or their
    ``forward``'s code shared a cache folder and checkpoint runs: one's embeddings were
    read as the other's. (Attributes of other kinds are not read, as the user guide's
    backbones page says.)
    """
    saved = set(module.state_dict())
    for name, buffer in module.named_buffers():
        if name not in saved:  # persistent=False
            h.update(name.encode())
            h.update(buffer.detach().cpu().contiguous().numpy().tobytes())
    for name, sub in module.named_modules():
        code = getattr(getattr(type(sub), "forward", None), "__code__", None)
        if code is not None:
            h.update(code.co_code)
            h.update(repr([c for c in code.co_consts
                           if isinstance(c, (str, bytes, int, float, type(None)))]).encode())
        for attr, value in sorted(vars(sub).items()):
            if not attr.startswith("_") and attr != "training" and isinstance(
                    value, (str, bytes, int, float, type(None), tuple)):
                h.update(f"{name}.{attr}={value!r}\0".encode())


def run_keys(images):
    """One key per image of a training run, for telling runs apart (checkpoints).

    A file is keyed by its path relative to the folder all the run's files share, its
    size and its modification time (not its status-change time, which a ``chmod`` or a
    hard link sets): a data folder moved or copied with its files' times kept (``mv``,
    ``cp -p``, ``rsync -a``) is the same data. Other images are keyed by their pixels
    (:func:`_content_key`).

    Parameters
    ----------
    images : sequence
        File paths, PIL images or uint8 arrays.

    Returns
    -------
    ndarray of str
        One key per image, in order.
    """
    paths = {i: _absolute(x) for i, x in enumerate(images)
             if isinstance(x, (str, os.PathLike))}
    root = ""
    if paths:
        try:
            root = os.path.commonpath(list(paths.values()))
        except (ValueError, TypeError):  # several drives (Windows), str and bytes mixed
            root = ""
        if root in paths.values():  # one file (maybe repeated): its folder
            root = os.path.dirname(root)
    keys, by_path = [], {}  # a file once, however many raters rated it
    for i, x in enumerate(images):
        if i not in paths:
            keys.append(_content_key(x, ctime=False))
            continue
        key = by_path.get(paths[i])
        if key is None:
            try:
                st = os.stat(paths[i])
            except OSError:
                raise _no_image_file(_plain_path(x), shown=paths[i]) from None
            name = os.path.relpath(paths[i], root) if root else paths[i]
            key = by_path[paths[i]] = (os.fsencode(name).hex()
                                       + f":{st.st_mtime_ns}:{st.st_size}")
        keys.append(key)
    return np.array(keys)


def _module_fingerprint(module):
    h = hashlib.blake2b(digest_size=8)
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class ImageEmbedder:
    """Embeds images with a frozen backbone, once: results are cached by image key.

    Parameters
    ----------
    backbone : Backbone
        Used in eval mode under ``torch.inference_mode``; never trained here.
    device : torch.device
    batch_size : int, default=32
    cache_dir : str or path-like, default=None
        If given, embeddings are also stored there (one ``.npy`` per image, written
        atomically), so a later run or an interrupted extraction reuses them. Its
        folder is named after the backbone, its weights and ``CACHE_VERSION`` (of
        this module), the version of the way images become embeddings.
    progress : bool, default=False
        Show a progress bar on stderr while embedding.
    on_error : {"raise", "skip"}, default="raise"
        What to do with an image that cannot be read (missing, truncated, not an
        image): raise a ValueError naming the file, or give it a row of NaN and warn
        with the names of all such files (:class:`PIAAWarning`).
    mixed_precision : bool, default=False
        Run the backbone under bfloat16 autocast (embeddings stay float32 arrays, and
        are cached apart from full-precision ones).

    Notes
    -----
    Copies of an embedder (``copy.deepcopy``, :func:`sklearn.base.clone` of a net
    that holds it) share the same embedder: it is a read-only service whose cache is
    a memo, and copying the backbone and cache for every personalized net would cost
    memory and time for nothing. Pickling stores the backbone but not the embeddings
    held in memory (a memo of every image embedded so far: joblib would carry all the
    training images' embeddings to every job of a parallel evaluation, 200 MB each at
    FLICKR-AES size); ``cache_dir`` keeps embeddings across processes, and
    :meth:`embeddings` and :meth:`remember` hand a copy in another process those of
    the images it is about to read.

    Greyscale, palette, CMYK, 16-bit and RGBA images are converted to RGB and EXIF
    orientation is applied (:func:`load_image`).
    """

    def __init__(self, backbone, device, batch_size=32, cache_dir=None, progress=False,
                 on_error="raise", mixed_precision=False):
        self.backbone = backbone.eval().to(memory_format=torch.channels_last)
        self.device = device
        self.batch_size = batch_size
        check_cache_dir(cache_dir)
        self.cache_dir = None if cache_dir is None else folder_path(cache_dir)
        self.progress = progress
        self.on_error = on_error
        self.mixed_precision = mixed_precision
        self.out_features = backbone.out_features
        # embedders of one backbone share what they embedded (see shared_backbone)
        self._memory = _MEMOS.setdefault(self.backbone, {}).setdefault(
            bool(mixed_precision), _Memo())
        self._fingerprint = None
        self._folded = None

    # Images per forward pass on a CPU, each batch of ``batch_size`` run in such parts
    # (the same numbers as whole batches on AVX-512 CPUs; on AVX2 ones the last bits may
    # differ, as between any two batch sizes); None: cpu_forward_batch().
    forward_batch = None

    @property
    def memo_size(self):
        """Embeddings held in memory, at most: the least recently used beyond are
        forgotten (500 MB of EfficientNet-Lite0's; a service scoring new images for
        months must not grow without bound). ``cache_dir`` keeps them all, on disk.
        One bound for every embedder of the backbone, which share the memo."""
        return self._memory.size

    @memo_size.setter
    def memo_size(self, value):
        self._memory.size = int(value)

    @contextlib.contextmanager
    def holding(self, n):
        """Hold at least ``n`` embeddings in the memo while the block runs, then forget
        the oldest beyond :attr:`memo_size` (see ``_Memo.holding``).

        Parameters
        ----------
        n : int
            Embeddings to hold, whatever :attr:`memo_size` says (which stays as set).

        Yields
        ------
        None
        """
        try:
            with self._memory.holding(n):
                yield
        finally:  # a block that raised (Ctrl-C, an unreadable image) too
            self.remember({})

    def _forward_batch(self):
        if torch.device(self.device).type != "cpu":
            return None  # a GPU wants the whole batch
        return self.forward_batch or cpu_forward_batch()

    def __deepcopy__(self, memo):
        return self

    def replaced(self, **settings):
        """A copy with other ``settings`` (``cache_dir``, ``on_error``, ...).

        The copy shares the backbone and the embeddings held in memory; changing a
        setting of an embedder in place would change it for every estimator and net
        that shares it (see Notes).

        Parameters
        ----------
        **settings
            Attributes of the copy, e.g. ``cache_dir`` (made absolute here).

        Returns
        -------
        ImageEmbedder
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        check_cache_dir(settings.get("cache_dir"))
        if settings.get("cache_dir") is not None:
            settings["cache_dir"] = folder_path(settings["cache_dir"])
        new.__dict__.update(settings)
        return new

    def __getstate__(self):
        # CPU copies: the pickle loads where the GPU is missing, and pickling (a joblib
        # worker, a save) does not take the live estimator's backbone off its GPU.
        state = cpu_copies({k: v for k, v in self.__dict__.items()
                            if k not in ("_folded", "_memory")})
        state["_folded"] = None  # rebuilt from the backbone when next needed
        state["_memory"] = OrderedDict()  # a memo (see Notes)
        state["memo_size"] = self.memo_size
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if not usable(self.device):  # e.g. cuda:1 on a machine with one GPU, or none
            self.device = torch.device("cpu")
        self.backbone = self.backbone.to(self.device)
        self.__dict__.setdefault("_folded", None)
        self.__dict__.setdefault("mixed_precision", False)  # pickled before it existed
        # pickled before it existed: a prior's set_params and save_model compare it
        self.__dict__.setdefault("progress", False)
        size = self.__dict__.pop("memo_size", _Memo.size)  # an attribute once
        self._memory = _Memo(self.__dict__.get("_memory") or ())  # its own: a copy
        self._memory.size = int(size)

    def _inference_net(self):
        """The backbone with BatchNorm folded into its convolutions (same function, faster)."""
        if self._folded is None:
            self._folded = _FOLDED.get(self.backbone)
        if self._folded is None:
            size = self.backbone.input_size
            example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
            example = example.to(self.device).contiguous(memory_format=torch.channels_last)
            self._folded = _FOLDED[self.backbone] = fold_batchnorm(
                self.backbone, example).to(memory_format=torch.channels_last)
        return self._folded

    def _disk_dir(self):
        if self._fingerprint is None:
            self._fingerprint = backbone_fingerprint(self.backbone)
        suffix = "-bf16" if self.mixed_precision else ""  # never mixed with float32 rows
        # checked (and made) only when there is something to write: a filled cache on
        # read-only storage serves every image it holds
        return os.path.join(os.fspath(self.cache_dir), f"{self.backbone.name}-"
                            f"{self._fingerprint}{suffix}-v{CACHE_VERSION}")

    def _embed_batch(self, pixels):
        # (N, H, W, 3) bytes, permuted: channels-last, which runs convolutions about
        # 1.4x faster on CPU (same numbers); bytes are a quarter of floats to move.
        x = torch.from_numpy(np.stack(pixels)).to(self.device).permute(0, 3, 1, 2)
        net = self._inference_net()
        step = self._forward_batch() or len(x)
        mean, std = self.backbone.mean, self.backbone.std
        # Each part is made float just before its forward pass: it is still in the
        # cache, and a few images' floats are reused memory, where the whole batch's
        # (38 MB at 64 images) was fresh pages for the system to map, every batch.
        with torch.inference_mode(), autocast(self.device, self.mixed_precision):
            out = torch.cat([_forward_part(net, normalize_pixels(part, mean, std))
                             for part in x.split(step)])
        return out.float().cpu().numpy()

    def __call__(self, X, y=None):
        return self.transform(X)

    def transform(self, X):
        """Embeddings ``(N, D)`` float32 of the images in ``X``.

        Precomputed 2-D feature arrays of width ``D`` pass through unchanged.
        """
        unique, inverse = self.transform_unique(X)
        return unique[inverse]

    def transform_unique(self, X, strict_cache=False):
        """Embeddings of the distinct images in ``X`` and, per row, its index among them.

        A rating table names each image once per rater; embedding (and holding) each
        distinct image once keeps memory proportional to the number of images.

        The on-disk cache is a convenience: a ``cache_dir`` that cannot be made, is
        read-only or lacks the space for the new embeddings, or a write to it that
        fails, gives a :class:`PIAAWarning` and the images are embedded without it.
        With ``strict_cache`` (training: hours of embedding are about to start) a
        folder that cannot be made or lacks the space raises a ValueError instead.

        Returns
        -------
        embeddings : ndarray of shape (n_distinct, D), float32
        inverse : ndarray of shape (N,), int
        """
        if input_kind(X) == FEATURES:
            if _holds_text(X):
                # a table of paths, also as a TaskSet (which keeps its rows as an array)
                what = "a table" if hasattr(X, "columns") else "a 2-D array"
                raise ValueError(
                    f"X is {what} of {np.shape(X)[1]} column(s) holding text; this model "
                    "embeds images: pass its column of image paths (e.g. df['image']), "
                    "or embeddings as numbers.")
            if np.asarray(X).dtype == np.uint8:  # a torch uint8 tensor too
                # Embeddings are floats; a 720 x 1280 greyscale frame would otherwise be
                # read as 720 rows of features (1280 is EfficientNet-Lite0's width).
                raise ValueError(
                    f"X is a 2-D uint8 array of shape {X.shape}: one greyscale image, not "
                    "rows of embeddings; pass images as a list ([image]) or an (N, H, W, 3) "
                    "uint8 array, and precomputed embeddings as floats.")
            X = np.asarray(as_indexable(X), dtype=np.float32)
            if X.shape[1] != self.out_features:
                raise ValueError(
                    f"X has {X.shape[1]} features, but backbone {self.backbone.name!r} "
                    f"gives {self.out_features}-dimensional embeddings."
                )
            # NaN rows stand for unreadable images downstream: never let input make them.
            check_finite_features(X)
            return X, np.arange(len(X))
        keys, rows, failed = self._rows(as_indexable(X), strict_cache)
        position = {}
        inverse = np.fromiter((position.setdefault(k, len(position)) for k in keys),
                              dtype=np.intp, count=len(keys))
        nan = np.full(self.out_features, np.nan, dtype=np.float32)
        unique = np.stack([rows[k] if k not in failed else nan
                           for k in position]).astype(np.float32, copy=False)
        if failed:
            self._report(failed)
        return unique, inverse

    def embeddings(self, X):
        """The embeddings of the readable images in ``X``, by their keys in the memo.

        What a copy of this embedder in another process needs (:meth:`remember`) so as
        to embed none of these images again: pickling leaves the memo behind (see
        Notes). Images not held yet are embedded, through ``cache_dir`` where given.

        Parameters
        ----------
        X : list or ndarray
            Images; precomputed features give an empty dict.

        Returns
        -------
        dict
            Key -> embedding, ndarray of shape (D,), float32. Unreadable images are
            left out without a word, whatever ``on_error``: the copy meets them again,
            and raises or warns about them as it would have.
        """
        if input_kind(X) == FEATURES:
            return {}
        _, rows, _ = self.replaced(on_error="skip")._rows(as_indexable(X), False)
        return rows

    def _rows(self, X, strict_cache):
        """Each image's key, the embeddings by key, and the unreadable images by key.

        ``failed`` maps a key to ``(image, reason)``; with ``on_error="raise"`` an
        unreadable image raises instead.
        """
        failed = {}  # key -> (image, reason), for on_error="skip"
        # Once per distinct path (a rater table names each image once per rater): a
        # stat and a hash each, milliseconds apiece on a network file system.
        by_path = {}

        def key(i, x):
            if not isinstance(x, (str, os.PathLike)):
                return self._key(x, failed, i)
            path = os.fspath(x)
            k = by_path.get(path)
            if k is None:
                k = by_path[path] = self._key(x, failed, i)
            return k

        keys = [key(i, x) for i, x in enumerate(X)]
        if self.on_error == "raise":  # every missing file at once, before any work
            raise_unreadable([failed[k][1] for k in failed])
        todo, rows, held = {}, {}, {}  # rows: key -> embedding, this call's
        disk = self._disk_dir() if self.cache_dir is not None else None
        for i, key in enumerate(keys):
            if key in rows or key in todo or key in failed:
                continue
            row = self._memory.get(key)  # one lookup: another thread may evict it
            if row is not None and disk is not None \
                    and self._memory.disks.get(key) != disk:
                held[key] = row  # in memory, maybe not in this cache_dir
            if row is None and disk is not None:
                row = self._from_disk(disk, key)
                if row is not None:
                    self._memory.disks[key] = disk
            if row is None:
                todo[key] = i
            else:
                rows[key] = row
        if held:
            self._save_held(held, disk, strict_cache)
        if todo and disk is not None:
            disk = self._writable_disk(disk, len(todo), strict_cache)
        if todo:
            self._embed_missing(X, todo, disk, failed, rows)
        self.remember(rows)
        return keys, rows, failed

    def _save_held(self, held, disk, strict):
        """Write to ``disk`` those of the embeddings ``held`` in memory it lacks.

        ``cache_dir`` keeps every embedding, on disk: one made before the folder was
        given (``set_params`` on a fitted model), or by a model sharing the backbone
        without it, was never written, and the next process embedded it again.
        """
        missing = {k: row for k, row in held.items()
                   if not os.path.isfile(os.path.join(disk, k + ".npy"))}
        if missing:
            disk = self._writable_disk(disk, len(missing), strict)
        for key, row in missing.items():
            if disk is None or not self._save(disk, key, row):
                return
        for key in held:
            self._memory.disks[key] = disk

    def _writable_disk(self, disk, n_new, strict):
        """``disk`` if ``n_new`` embeddings can be written there, else None, warning.

        A read-only folder (a shared cache) always only warns: what it holds still
        serves. A folder that cannot be made or lacks the space raises when ``strict``.

        Each problem is said once per folder and process (a service predicting on a
        read-only shared cache was warned at every call that met new images, the count
        changing so that Python's filter let each through). A folder that takes no file
        is left aside for :data:`CACHE_RETRY_SECONDS`, not probed with a file at every
        call; one short of space is checked at every call (a statfs), so that what fits
        is still cached.
        """
        if not strict and time.monotonic() < _ASIDE.get(disk, 0):
            return None
        # One .npy per image, each taking whole file-system blocks.
        per_file = -(-(self.out_features * 4 + 128) // 4096) * 4096
        for needed in (0, n_new * per_file):  # writable at all, then room enough
            try:
                check_writable_dir(disk, needed, name=self._cache_name(disk))
            except ValueError as exc:
                problem = str(exc)
                if strict and (needed or not os.path.isdir(self.cache_dir)):
                    # a mistyped or unusable path, or a full disk, before the work (a
                    # read-only folder the backbone's subfolder cannot be made in
                    # serves what it holds, as one holding the subfolder does)
                    raise ValueError(problem) from None
                if needed:
                    _warn_once(disk, "space", f"{problem} The {n_new} image(s) not in it "
                               "yet are embedded without being cached; free space there "
                               "(or give another cache_dir) to cache them. Said once for "
                               "this folder: later calls cache what fits.")
                else:
                    _ASIDE[disk] = time.monotonic() + CACHE_RETRY_SECONDS
                    _warn_once(disk, "writable", f"{problem} The {n_new} image(s) not in "
                               "it yet, and the new images of later calls, are embedded "
                               "without being cached; make it writable (or give another "
                               "cache_dir) to cache them. Said once for this folder: it is "
                               f"checked again every {CACHE_RETRY_SECONDS / 60:g} minutes.")
                return None
        _ASIDE.pop(disk, None)
        _remove_stale_writes(disk)
        return disk

    def _cache_name(self, disk):
        # disk is a subfolder of cache_dir named after the backbone (see _disk_dir), a
        # path the user never gave: messages name the user's folder first
        return (f"cache_dir {os.fspath(self.cache_dir)!r} (its subfolder "
                f"{os.path.basename(disk)!r}, for this backbone)")

    def _key(self, x, failed, i):
        try:
            if not isinstance(x, (str, os.PathLike, Image.Image)) and np.ndim(x) < 2:
                # e.g. None or NaN from an empty cell of a path column
                raise ValueError(f"X[{i}] is not an image: {x!r} (expected a file path, a "
                                 "PIL image or a uint8 array of shape (H, W, 3))")
            return _content_key(x)
        except IMAGE_ERRORS as exc:
            where = os.fspath(x) if isinstance(x, (str, os.PathLike)) else id(x)
            key = f"unreadable:{where}"
            # on_error="raise" raises them all once the keys are made
            failed[key] = (x, exc if self.on_error == "raise" else str(exc))
            return key

    def _from_disk(self, disk, key):
        """The cached embedding of ``key``, or None (none, or a damaged one)."""
        path = os.path.join(disk, key + ".npy")
        if not os.path.isfile(path):
            return None
        try:
            row = np.load(path)
        except Exception:  # noqa: BLE001
            # A damaged cache entry is recomputed and overwritten, however it is damaged:
            # NumPy's header parser raises tokenize's and Python's syntax errors too,
            # and a header claiming a huge shape a MemoryError.
            return None
        if (row.shape != (self.out_features,) or row.dtype != np.float32
                or not np.isfinite(row).all()):
            return None
        return row

    def remember(self, rows):
        """Hold ``rows`` in the memo as the most recently used.

        The oldest beyond :attr:`memo_size` are forgotten. Safe beside other threads'
        calls (each step is one dict operation; a key another thread evicted is simply
        not there).

        Parameters
        ----------
        rows : dict
            Key -> embedding, as :meth:`embeddings` gives them (from an embedder of
            the same backbone and precision: the keys name images, not backbones).
        """
        memo = self._memory
        for key, row in rows.items():
            # A row of a batch just embedded is a view of the whole batch: held as it
            # is, one recent row kept its batch's other rows in memory after they were
            # forgotten (up to batch_size times the memo's size).
            memo[key] = row if row.flags.owndata else row.copy()
            try:
                memo.move_to_end(key)
            except KeyError:
                pass
        while len(memo) > max(memo.bound, 0):
            try:
                memo.disks.pop(memo.popitem(last=False)[0], None)
            except KeyError:
                break
        if len(memo.disks) > len(memo):  # rows read or written, then not held
            for key in [k for k in list(memo.disks) if k not in memo]:
                memo.disks.pop(key, None)

    def _save(self, disk, key, row):
        """Cache ``row`` in ``disk``; False, warning once, where writing fails."""
        try:
            _atomic_save(os.path.join(disk, key + ".npy"), row)
        except OSError as exc:  # the disk filled up, the folder went away
            # the embeddings are what was asked for; the cache is a bonus
            _warn_once(disk, "write", f"{self._cache_name(disk)}: writing an embedding "
                       f"failed ({exc.strerror or exc}); the other images are embedded "
                       "without being cached. Said once for this folder.")
            return False
        self._memory.disks[key] = disk
        return True

    def _report(self, failed):
        names = [f"{_name(x)} ({reason})" for x, reason in failed.values()]
        warn_caller(f"{len(names)} image(s) could not be read (on_error='skip'; they are "
                    "predicted as NaN, and left out of any training): "
                    + listing(names, sep="; "))

    def _decode(self, X, i, size):
        try:
            return _draft(X[i], size)
        except IMAGE_ERRORS as exc:
            return exc

    def _embed_missing(self, X, todo, disk, failed, rows):
        items = list(todo.items())
        size = self.backbone.input_size
        chunks = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]

        def prepare(i):
            img = self._decode(X, i, size)
            return img if isinstance(img, Exception) else image_pixels(img, size)

        def decode(chunk):
            return thread_map(prepare, [i for _, i in chunk])

        # A GPU computes while the CPU decodes the next batch. On a CPU, decoding beside
        # the forward pass takes a core from its threads, and each parallel region waits
        # for its slowest thread: decoding on all cores between batches is faster.
        overlap = torch.device(self.device).type != "cpu"
        bar = progress(total=len(items), desc="embed", unit="img",
                       enabled=self.progress)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(decode, chunks[0]) if overlap else None
            for n, chunk in enumerate(chunks):
                if overlap:
                    images = pending.result()
                    if n + 1 < len(chunks):
                        pending = pool.submit(decode, chunks[n + 1])
                else:
                    images = decode(chunk)
                ok = [j for j, img in enumerate(images) if not isinstance(img, Exception)]
                if len(ok) < len(chunk) and self.on_error == "raise":
                    # One error naming every bad image, not one per rerun: the images
                    # not embedded yet are only decoded (at reduced size) to find them.
                    rest = [X[i] for later in chunks[n + 1:] for _, i in later]
                    raise_unreadable(
                        [img for img in images if isinstance(img, Exception)]
                        + [e for e in thread_map(lambda x: _decode_error(x, size), rest)
                           if e is not None])
                for j in set(range(len(chunk))) - set(ok):
                    failed[chunk[j][0]] = (X[chunk[j][1]], str(images[j]))
                chunk = [chunk[j] for j in ok]
                emb = self._embed_batch([images[j] for j in ok]) if ok else []
                # NaN rows mean "unreadable image" downstream: a backbone must not make them.
                bad = [X[i] for (_, i), row in zip(chunk, emb) if not np.isfinite(row).all()]
                if bad:
                    raise ValueError(
                        f"the backbone gave NaN or infinite embeddings for {len(bad)} "
                        f"image(s): {', '.join(_name(x) for x in bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}. Check the backbone (its "
                        "weights, or its arithmetic on such images).")
                for (key, _), row in zip(chunk, emb):
                    rows[key] = row
                    if disk is not None and not self._save(disk, key, row):
                        disk = None
                bar.update(len(images))
        bar.close()


#: Cache folders this process has swept of stale temporary files (once each).
_SWEPT = set()

#: Seconds a cache folder that takes no file (read-only) is left aside before it is
#: probed again. Probing it at every call created a file there every time (on a network
#: file system, milliseconds); never probing it again would leave a remounted cache
#: unused until the service restarts. Ten minutes is neither.
CACHE_RETRY_SECONDS = 600

#: Cache folders left aside, each with the time.monotonic() until which it is.
#: Per folder and process, not per embedder: a service loads models again, and the
#: models of one backbone share a folder.
_ASIDE = {}

#: (folder, problem) pairs this process has warned about: each once.
_WARNED = set()


def _warn_once(disk, problem, message):
    """Warn with ``message`` unless this process did so for ``problem`` of ``disk``."""
    if (disk, problem) not in _WARNED:
        _WARNED.add((disk, problem))
        warn_caller(message)


def _remove_stale_writes(disk):
    """Once per folder and process: remove the cache writes a killed process left.

    Ones older than an hour are such leftovers: another process writing to the same
    cache right now has only fresh ones.
    """
    if disk not in _SWEPT:
        _SWEPT.add(disk)
        remove_unfinished_writes(disk, older_than=STALE_WRITE_SECONDS)


def _name(src):
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return f"<{type(src).__name__} image>"


def _atomic_save(path, array):
    """Write one embedding of the cache as ``path`` (.npy), whole or not at all.

    :func:`~sklearn_piaa._io.atomic_write` without its checks of a user's file (a
    link, a read-only file, a mode to keep): a cache entry is the package's own, in
    a folder checked before the batch. Half the system calls: 0.06-0.10 ms a file
    against 0.11-0.16 (a 2-core cloud machine's disk), thousands of files per data set.
    """
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"  # what remove_unfinished_writes sweeps
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)  # the mode open() gives a new file, under the umask
    write_and_rename(fd, tmp, path, lambda fh: np.save(fh, array))



def embed_images(X, backbone="efficientnet_lite0", backbone_weights=None, batch_size=64,
                 cache_dir=None, device="cpu", mixed_precision=False, random_state=None):
    """Embed images with a frozen backbone: the features head-only training works on.

    Useful to compute embeddings once and pass them as precomputed features
    (``MetaAestheticRegressor(backbone=None)``), e.g. across many folds or baselines.

    Parameters
    ----------
    X : list or ndarray
        Image paths, PIL images or uint8 arrays.
    backbone : str or nn.Module, default="efficientnet_lite0"
    backbone_weights : str or path-like, default=None
    batch_size : int, default=64
        Images decoded and cached together; on a CPU the backbone runs on parts of 2
        images per thread (faster: the activations stay in the cores' caches).
    cache_dir : str or path-like, default=None
        On-disk embedding cache, as for :class:`~sklearn_piaa.MetaAestheticRegressor`
        (see :ref:`backbones`); a folder that cannot be made or lacks the space for the
        new embeddings raises before any is computed, as in ``fit``.
    device : str or torch.device, default="cpu"
        As for :class:`~sklearn_piaa.MetaAestheticRegressor`: ``"cuda:1"``, not ``1``.
    mixed_precision : bool, default=False
        Run the backbone under bfloat16 autocast: about 1.2-1.3x faster on CPUs with
        bfloat16 instructions (on a GPU, embedding is bound by JPEG decoding instead),
        embeddings within about 4% (relative norm; up to 9% on photos) of float32 ones
        (``benchmarks/speed.py``). On CPUs without bfloat16 support in torch (AVX2
        only) it is emulated, 20x slower, and warns.
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights of a backbone built without trained weights
        (``"tiny_cnn"``); ``None`` draws them from a copy of torch's global generator,
        which is left as it was. Pretrained weights draw nothing.

    Returns
    -------
    ndarray of shape (n_images, embedding_dim), float32

    Raises
    ------
    TypeError
        If ``cache_dir`` is not a str, os.PathLike or None.
    InvalidParameterError
        (a ``ValueError`` and a ``TypeError``) If ``device`` is not a str or a
        torch.device (an int, say), as the estimators refuse it.
    ValueError
        If ``batch_size`` is not a positive integer, ``device`` names no torch device
        or one this machine does not have, or ``random_state`` cannot seed a generator.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import embed_images
    >>> images = np.zeros((2, 40, 40, 3), dtype=np.uint8)
    >>> embed_images(images, backbone="tiny_cnn").shape
    (2, 16)
    """
    from ._device import resolve_device, seeded
    from .nn.backbones import owned_backbone

    if not is_count(batch_size):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if not isinstance(mixed_precision, (bool, np.bool_)):
        # "False" and "no" (true as strings) ran bfloat16 without a word
        raise ValueError(f"mixed_precision must be True or False; got {mixed_precision!r}.")
    check_cache_dir(cache_dir)  # before the backbone is built
    dev = resolve_device(device)
    seed = None
    if random_state is not None:  # as the baselines seed their backbones
        seed = check_seed(random_state).randint(np.iinfo(np.int32).max)
    with seeded(seed):  # building layers draws their initial weights: not the caller's
        model = owned_backbone(backbone, backbone_weights).to(dev)
    embedder = ImageEmbedder(model, dev, batch_size, cache_dir,
                             mixed_precision=mixed_precision)
    # an extraction the caller wants cached: a folder that cannot be made or lacks the
    # room fails before it starts, as fit does
    unique, inverse = embedder.transform_unique(X, strict_cache=True)
    return unique[inverse]
