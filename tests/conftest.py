import os
import signal
import struct
import zipfile

import numpy as np
import pytest
import torch

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


@pytest.fixture(autouse=True)
def _seed():
    """Seed global RNGs for every test; the library itself never does."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def python_sigint():
    """Python's own SIGINT handler during each test, restored after.

    A shell without job control starts background commands (``.ci/run &``) with SIGINT
    ignored, and Ctrl-C tests (:class:`CtrlC`) then saw no interrupt.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def _bfloat16_warned(monkeypatch):
    """The once-per-process warning of slow bfloat16 taken as given, as on a CPU with
    bfloat16 support: otherwise, on an AVX2 CPU, whichever test first ran under
    autocast would see it (tests/test_mixed_precision.py tests it)."""
    from sklearn_piaa import _device

    monkeypatch.setattr(_device, "_SLOW_BFLOAT16_WARNED", [True])


def make_rating_features(n_images=200, n_raters=12, per_rater=80, n_features=8,
                         deviation=0.6, random_state=0):
    """Linear-taste raters over feature vectors: consensus plus a per-rater deviation."""
    rng = np.random.RandomState(random_state)
    feats = rng.randn(n_images, n_features).astype(np.float32)
    w0 = rng.randn(n_features)
    dev = rng.randn(n_raters, n_features) * deviation * np.linspace(0.2, 2.0, n_raters)[:, None]
    rows, y, groups = [], [], []
    for u in range(n_raters):
        idx = rng.choice(n_images, per_rater, replace=False)
        latent = feats[idx] @ (w0 + dev[u]) + 0.3 * rng.randn(per_rater)
        score = np.clip(np.round(3 + latent / latent.std()), 1, 5)
        rows.append(idx)
        y.append(score)
        groups.append(np.full(per_rater, f"r{u:02d}"))
    idx = np.concatenate(rows)
    return feats[idx], np.concatenate(y).astype(np.float32), np.concatenate(groups), dev


@pytest.fixture
def ratings():
    X, y, groups, _ = make_rating_features()
    return X, y, groups


TINY = dict(backbone=None, hidden_sizes=(16,), n_iterations=10, support_size=20,
            query_size=10, finetune_epochs=5, random_state=0)


@pytest.fixture
def tiny_params():
    return dict(TINY)


@pytest.fixture
def image_files(tmp_path):
    """A few small JPEG/PNG files with scores and raters."""
    from PIL import Image

    rng = np.random.RandomState(0)
    paths = []
    for i in range(12):
        arr = (rng.rand(40, 48, 3) * 255).astype(np.uint8)
        arr[..., i % 3] = (i * 20) % 255
        path = tmp_path / f"img_{i:02d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


#: Big-Five traits of the 12 raters of ``make_rating_features``.
TRAITS = {f"r{u:02d}": np.tanh(np.random.RandomState(u).randn(5)) for u in range(12)}


def tiny_baselines():
    """One small, fast configuration of each baseline (features 6 and 7 as attributes)."""
    from sklearn_piaa.baselines import (
        ConsensusRidgeRegressor,
        FPMFRegressor,
        PAIAARegressor,
        PAMRegressor,
        USARRegressor,
        UserRidgeRegressor,
    )

    return [
        UserRidgeRegressor(),
        ConsensusRidgeRegressor(),
        PAMRegressor(variant="both", attribute_columns=[6, 7], n_content_classes=5,
                     random_state=0),
        PAMRegressor(variant="content", n_content_classes=5, random_state=0),
        FPMFRegressor(n_factors=3, n_components=8, max_iter=5, random_state=0),
        USARRegressor(n_components=4, random_state=0),
        USARRegressor(variant="ppr", n_components=4, random_state=0),
        PAIAARegressor(personality=TRAITS, hidden_size=8, max_epochs=3, random_state=0),
    ]


def flip_a_stored_byte(path):
    """Flip one bit in the middle of the largest tensor of the torch archive ``path``.

    The archive stays a readable zip whose directory is intact: only a weight's bytes
    change, as a bad disk or copy would change them (``torch.load`` reads it as is).
    """
    with zipfile.ZipFile(path) as archive:
        part = max((info for info in archive.infolist() if "/data/" in info.filename),
                   key=lambda info: info.file_size)
    with open(path, "r+b") as fh:
        fh.seek(part.header_offset + 26)  # the local header's name and extra lengths
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        at = part.header_offset + 30 + name_len + extra_len + part.file_size // 2
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ 0x40]))
    return part.filename


def _listed_part(data, name):
    """Where the archive's list of parts (its central directory) gives ``name``."""
    at = data.find(b"PK\1\2")
    while at != -1:
        length, = struct.unpack_from("<H", data, at + 28)
        if data[at + 46:at + 46 + length] == name.encode():
            return at
        at = data.find(b"PK\1\2", at + 4)
    raise AssertionError(f"{name} is not listed")


def zero_a_listed_name_byte(path):
    """Zero a byte of a tensor's name in the archive's list of parts, as a bad disk's
    zeroed block would: ``(name, as listed now)``, e.g. ``("archive/data/3",
    "archive/dat\0/3")``. The part's own header keeps the name."""
    with zipfile.ZipFile(path) as archive:
        name = max((info for info in archive.infolist() if "/data/" in info.filename),
                   key=lambda info: info.file_size).filename
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    at = _listed_part(data, name) + 46 + len(name) - 3
    data[at] = 0
    with open(path, "wb") as fh:
        fh.write(data)
    return name, name[:len(name) - 3] + "\0" + name[len(name) - 2:]


def damage_the_list_of_parts(path):
    """Shorten the first listed name's length by one: the list cannot be read on."""
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    at = data.find(b"PK\1\2")
    length, = struct.unpack_from("<H", data, at + 28)
    struct.pack_into("<H", data, at + 28, length - 1)
    with open(path, "wb") as fh:
        fh.write(data)


def edited_state(path):
    """The state of a saved model file, to change and save again as another program (or
    an earlier version) would write it: without the digest of what sklearn-piaa wrote."""
    import torch

    from sklearn_piaa._checkpoint import DIGEST_KEY

    state = torch.load(path, weights_only=True)
    state.pop(DIGEST_KEY)
    return state


def mark_a_part_as_a_folder(path):
    """Set the folder bit of the largest tensor's entry in the archive's directory.

    The parts' bytes and checksums stay intact; ``torch.load`` then reads that tensor
    as zeros. Returns the part's name.
    """
    with zipfile.ZipFile(path) as archive:
        part = max((info for info in archive.infolist() if "/data/" in info.filename),
                   key=lambda info: info.file_size)
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    at = data.find(b"PK\x01\x02")
    while at != -1:  # the directory's entries: name length at +28, name at +46
        n = struct.unpack("<H", data[at + 28:at + 30])[0]
        if bytes(data[at + 46:at + 46 + n]) == part.filename.encode():
            data[at + 38] ^= 0x10  # MS-DOS attributes: "directory"
            break
        at = data.find(b"PK\x01\x02", at + 1)
    with open(path, "wb") as fh:
        fh.write(data)
    return part.filename


def damage_the_end_record(path):
    """Flip a bit in the disk number of the archive's zip64 end-record locator."""
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    at = data.rfind(b"PK\x06\x07")
    assert at != -1, "no zip64 locator"
    data[at + 4] ^= 1
    with open(path, "wb") as fh:
        fh.write(data)


class CtrlC:
    """A skorch callback: Ctrl-C (a SIGINT to the process) during the second epoch.

    A process started in the background by a shell without job control (``cmd &``)
    ignores SIGINT, so the tests using it install Python's handler (``python_sigint``).
    """

    def __init__(self, at_epoch=2):
        self.at_epoch = at_epoch  # of the history: a net trained before has more

    def initialize(self):
        return self

    def on_batch_end(self, net, **kwargs):
        if len(net.history) == self.at_epoch:
            signal.raise_signal(signal.SIGINT)

    def __getattr__(self, name):  # skorch calls every hook
        return lambda *args, **kwargs: None


def ratings_folder(tmp_path, n_images=24, n_raters=6, broken=False):
    """PNG images 0.png.. in tmp_path and ratings.csv: raters u0.. rating every image."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for i in range(n_images):
        arr = (rng.rand(24, 24, 3) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
    if broken:
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    lines = ["rater,image,score"]
    for r in range(n_raters):
        for i in range(n_images):
            lines.append(f"u{r},{i}.png,{rng.randint(1, 6)}")
    (tmp_path / "ratings.csv").write_text("\n".join(lines))
    return tmp_path / "ratings.csv"


HELD = ["r09", "r10", "r11"]


def split_held_out(ratings, held=HELD, cols=slice(None)):
    """The ``ratings`` fixture as training and held-out TaskSets (features ``cols``)."""
    from sklearn_piaa import TaskSet

    X, y, groups = ratings
    test = np.isin(groups, held)
    return (TaskSet.from_arrays(X[~test][:, cols], y[~test], groups[~test]),
            TaskSet.from_arrays(X[test][:, cols], y[test], groups[test]))


def evaluate_sizes(model, test, **kwargs):
    """``evaluate_personalization`` at 5 and 20 support images, 2 draws, seed 0."""
    from sklearn_piaa.evaluation import evaluate_personalization

    params = {"n_support": (5, 20), "n_repeats": 2, "random_state": 0, **kwargs}
    return evaluate_personalization(model, test, **params)
