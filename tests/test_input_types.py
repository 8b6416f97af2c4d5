"""Inputs as users pass them: pandas objects, torch tensors, mixed ids, sparse matrices.

Each case once gave a silent wrong answer or an unhelpful error (found by an audit).
"""

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedSROCCScorer,
    embed_images,
    evaluate_personalization,
    personalized_srocc,
    srocc,
)
from sklearn_piaa.baselines import FPMFRegressor, PAIAARegressor


def test_a_shuffled_series_of_paths_keeps_its_scores_when_a_photo_is_skipped(tmp_path):
    # rows were picked with X[i]: by index label on a Series, pairing other photos with
    # the scores (or a bare KeyError with a text index)
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    paths = []
    for i in range(12):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    y = np.linspace(1, 5, 12)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(4,),
                                  n_iterations=1, support_size=3, query_size=2,
                                  random_state=0, on_error="skip").fit(
        paths, y, groups=np.repeat([0, 1], 6))
    table = pd.DataFrame({"image": paths[:8] + [str(tmp_path / "gone.png")],
                          "score": np.r_[y[:8], 3.0]}).sample(frac=1, random_state=0)
    with pytest.warns(UserWarning, match="unreadable image"):
        listed = meta.personalize(list(table.image), table.score.to_numpy(), max_epochs=2)
    for series in (table.image, table.set_index(table.image.str[-7:]).image):
        with pytest.warns(UserWarning, match="unreadable image"):
            net = meta.personalize(series, table.score, max_epochs=2)
        np.testing.assert_array_equal(net.predict(paths), listed.predict(paths))


def test_the_protocols_refuse_feature_tables_with_other_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    columns = [f"c{i}" for i in range(6)]
    X = pd.DataFrame(rng.randn(120, 6).astype(np.float32), columns=columns)
    y = np.clip(np.round(3 + X["c0"].to_numpy()), 1, 5)
    groups = np.repeat([1, 2, 3], 40)
    meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(4,), n_iterations=2,
                                  support_size=10, query_size=5, finetune_epochs=1,
                                  random_state=0).fit(X, y, groups=groups)
    swapped = X[columns[::-1]]
    match = "feature names should match"
    assert np.isfinite(personalized_srocc(meta, X, y, groups, n_support=10)[1]).all()
    with pytest.raises(ValueError, match=match):
        personalized_srocc(meta, swapped, y, groups, n_support=10)
    with pytest.raises(ValueError, match=match):
        PersonalizedSROCCScorer(n_support=10)(meta, swapped, y, groups=groups)
    mapping = {g: (swapped[groups == g], y[groups == g]) for g in (1, 2)}
    with pytest.raises(ValueError, match=match):
        evaluate_personalization(meta, mapping, n_support=10, n_repeats=1)
    mixed = {1: (X[groups == 1], y[groups == 1]), 2: (swapped[groups == 2], y[groups == 2])}
    with pytest.raises(ValueError, match=r"other columns than the first rater's: \[2\]"):
        evaluate_personalization(meta, mixed, n_support=10, n_repeats=1)


def test_baselines_take_int_and_mixed_rater_ids():
    rng = np.random.RandomState(0)
    X = rng.randn(160, 6).astype(np.float32)
    y = rng.randint(1, 6, 160).astype(float)
    # rater 7 is a personality file's '7' (its ids are text)
    traits = {str(u): rng.uniform(-1, 1, 5) for u in (7, 8, 9, 10)}
    PAIAARegressor(personality=traits, max_epochs=1, random_state=0).fit(
        X, y, groups=np.repeat([7, 8, 9, 10], 40))
    # an Excel id column: numbers and text mixed
    mixed = [1] * 40 + ["u2"] * 40 + [3] * 40 + ["u4"] * 40
    model = FPMFRegressor(max_iter=2, random_state=0).fit(X, y, groups=mixed)
    assert np.isfinite(model.predict(X[:5])).all()


def test_a_torch_greyscale_frame_is_not_rows_of_features():
    frame = torch.from_numpy(np.random.RandomState(0).randint(0, 256, (20, 16),
                                                              dtype=np.uint8))
    with pytest.raises(ValueError, match="one greyscale image"):
        embed_images(frame, backbone="tiny_cnn")


def test_sparse_support_and_two_column_scores_get_clear_errors():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4).astype(np.float32)
    meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(4,), n_iterations=1,
                                  support_size=5, query_size=3, random_state=0).fit(
        X, rng.uniform(1, 5, 60), groups=np.repeat([0, 1], 30))
    with pytest.raises((TypeError, ValueError), match="[Ss]parse"):
        meta.personalize(sparse.csr_matrix(X[:10]), np.full(10, 3.0))
    a = rng.rand(10)
    with pytest.raises(ValueError, match=r"y_true must be 1-D .* got shape \(10, 2\)"):
        srocc(np.c_[a, a], np.r_[a, a])
