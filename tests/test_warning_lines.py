"""Warnings about the user's input show the user's line, not one of the package or of
scikit-learn's wrapper around ``fit``."""

import warnings

import pytest
from conftest import TINY, make_rating_features

from sklearn_piaa import ConsensusRidgeRegressor, MetaAestheticRegressor, TaskSet

X, Y, GROUPS, _ = make_rating_features(n_raters=6, per_rater=40)
ONE = GROUPS == GROUPS[0]
FAR = Y.copy()
FAR[0] = 99.0  # a code for a missing rating, in a 1-5 table


def _far_scores():
    MetaAestheticRegressor(**TINY).fit(X, FAR, groups=GROUPS)


CASES = {
    "no groups": (lambda: MetaAestheticRegressor(**TINY).fit(X, Y), "got no groups"),
    "baseline without groups": (lambda: ConsensusRidgeRegressor(backbone=None).fit(X, Y),
                                "got no groups"),
    "column y": (lambda: MetaAestheticRegressor(**TINY).fit(X, Y[:, None], groups=GROUPS),
                 "column-vector y"),
    "column y of a TaskSet": (lambda: TaskSet(X, Y[:, None], GROUPS), "column-vector y"),
    "one rater": (lambda: MetaAestheticRegressor(**TINY).fit(X[ONE], Y[ONE], groups=GROUPS[ONE]),
                  "one rater only"),
    "offset features": (lambda: MetaAestheticRegressor(**TINY).fit(X + 1000, Y, groups=GROUPS),
                        "common offset"),
    "far scores": (_far_scores, "lie far outside"),
}


def _skipped_images(tmp_path, call):
    from PIL import Image

    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (12, 12), (30 * i, 0, 0)).save(path)
        paths.append(str(path))
    paths[3] = str(tmp_path / "missing.png")
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                  support_size=2, query_size=1, finetune_epochs=1,
                                  on_error="skip", random_state=0)
    y, groups = [1.0, 2.0, 3.0, 4.0] * 4, ["a"] * 8 + ["b"] * 8
    if call == "fit":
        meta.fit(paths * 2, y, groups=groups)
    else:
        meta.fit([p for p in paths if "missing" not in p] * 2, y[:14], groups=groups[:14])
        meta.personalize(paths, y[:8])


@pytest.mark.parametrize("call", ["fit", "personalize"])
def test_an_unreadable_image_warning_points_at_the_callers_line(tmp_path, call):
    # The skipped images were named at a line of the package (_estimator, _features).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _skipped_images(tmp_path, call)
    found = [w for w in caught if "missing.png" in str(w.message)]
    assert found and {w.filename for w in found} == {__file__}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fit_warning_points_at_the_callers_line(case):
    call, text = CASES[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    found = [w for w in caught if text in str(w.message)]
    assert found, [str(w.message)[:80] for w in caught]
    assert {w.filename for w in found} == {__file__}


def _cache_problem(tmp_path, monkeypatch, entry, problem):
    """``entry``'s method, its arguments, and a cache that warns when it is called."""
    import torch
    from PIL import Image

    from sklearn_piaa import _features
    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn.backbones import load_backbone

    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (12, 12), (40 * i, 0, 0)).save(path)
        paths.append(str(path))
    cache = tmp_path / "cache"
    cache.mkdir()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                  support_size=1, query_size=1, finetune_epochs=1,
                                  cache_dir=cache, random_state=0)
    fit_args = (paths[:4], [1.0, 2.0, 3.0, 4.0]), {"groups": ["a", "a", "b", "b"]}
    if entry == "predict":
        meta.fit(*fit_args[0], **fit_args[1])  # before the cache goes wrong
    if problem == "read-only cache":
        real = _features.check_writable_dir

        def read_only(path, needed_bytes=0, what="directory", name=None):
            real(path, needed_bytes, what, name)  # made, as a shared cache is: fit only warns
            raise ValueError(f"{name or f'{what} {path!r}'} is not writable: Read-only "
                             "file system.")

        monkeypatch.setattr(_features, "check_writable_dir", read_only)
    else:
        def no_space(path, array):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(_features, "_atomic_save", no_space)
    if entry == "fit":
        return meta.fit, *fit_args
    if entry == "predict":
        return meta.predict, (paths[4:],), {}
    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"), cache_dir=cache)
    return embedder.embeddings, (paths,), {}


@pytest.mark.parametrize("problem", ["read-only cache", "failed write"])
@pytest.mark.parametrize("entry", ["fit", "predict", "embeddings"])
def test_a_cache_warning_points_at_the_callers_line(tmp_path, monkeypatch, entry, problem):
    # A fixed stacklevel showed it at a line of the package from fit and predict, and
    # above the caller of embeddings.
    call, args, kwargs = _cache_problem(tmp_path, monkeypatch, entry, problem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(*args, **kwargs)  # the user's line: no frame of this file above it
    found = [w for w in caught if "without being cached" in str(w.message)]
    assert found, [str(w.message)[:80] for w in caught]
    assert {w.filename for w in found} == {__file__}
