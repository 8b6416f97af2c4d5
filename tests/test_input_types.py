"""Inputs as users pass them: pandas objects, torch tensors, mixed ids, sparse matrices.

Each case once gave a silent wrong answer or an unhelpful error (found by an audit).
"""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedSROCCScorer,
    PIAAWarning,
    TaskSet,
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


def test_an_array_like_without_len_personalizes_as_its_array(ratings, tiny_params):
    # fit took it (check_array), personalize failed on len(): "object of type
    # '_NotAnArray' has no len()"
    from sklearn.utils.estimator_checks import _NotAnArray

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(_NotAnArray(X), y, groups=groups)
    prior = FPMFRegressor(n_factors=3, n_components=8, max_iter=5, random_state=0).fit(
        _NotAnArray(X), y, groups=groups)
    for model in (meta, prior):
        expected = model.personalize(X[:20], y[:20], random_state=0).predict(X[20:40])
        user = model.personalize(_NotAnArray(X[:20]), y[:20], random_state=0)
        np.testing.assert_array_equal(user.predict(X[20:40]), expected)
        np.testing.assert_array_equal(user.predict(_NotAnArray(X[20:40])), expected)
        np.testing.assert_array_equal(  # a clone's refit, as cross_val_score does it
            clone(user).fit(_NotAnArray(X[:20]), y[:20]).predict(X[20:40]), expected)


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


def test_reversed_views_work_as_their_copies(ratings, tiny_params):
    # numpy views with negative strides (X[::-1], np.flip) reached torch, which refuses them
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    flipped = MetaAestheticRegressor(**tiny_params).fit(X[::-1, ::-1], y[::-1],
                                                        groups=groups[::-1])
    copied = MetaAestheticRegressor(**tiny_params).fit(X[::-1, ::-1].copy(), y[::-1].copy(),
                                                       groups=groups[::-1].copy())
    np.testing.assert_array_equal(flipped.predict(X[:5, ::-1]),
                                  copied.predict(X[:5, ::-1].copy()))
    Xr, yr = X[:12][::-1], y[:12][::-1]
    net = meta.personalize(Xr[:, ::-1][:, ::-1], yr)
    expected = meta.personalize(Xr.copy(), yr.copy())
    np.testing.assert_array_equal(net.predict(np.flip(X[:5], 0)[::-1]),
                                  expected.predict(X[:5]))
    np.testing.assert_array_equal(meta.predict(np.flip(X[:5], 0)), meta.predict(X[4::-1].copy()))


def test_column_names_of_mixed_types_are_refused_as_scikit_learn_refuses_them(
        ratings, tiny_params):
    # Kept as no names, embedding columns 0..3 joined to named ones were predicted in
    # any column order without an error.
    pd = pytest.importorskip("pandas")
    from sklearn_piaa import TaskSet
    from sklearn_piaa.baselines import UserRidgeRegressor

    X, y, groups = ratings
    mixed = pd.DataFrame(X, columns=[*range(4), *[f"a{i}" for i in range(X.shape[1] - 4)]])
    match = r"X's column names mix strings and other types \(int, str; e.g. \[0, 1, 2\]"
    for model in (MetaAestheticRegressor(**tiny_params), UserRidgeRegressor()):
        with pytest.raises(TypeError, match=match):
            model.fit(mixed, y, groups=groups)
        fitted = clone(model).fit(X, y, groups=groups)
        with pytest.raises(TypeError, match=match):
            fitted.predict(mixed)
    with pytest.raises(TypeError, match=match):
        TaskSet.from_arrays(mixed, y, groups)
    # all numbers: no names, as in scikit-learn
    numbered = pd.DataFrame(X)
    assert not hasattr(MetaAestheticRegressor(**tiny_params).fit(numbered, y, groups=groups),
                       "feature_names_in_")


def test_a_taskset_or_mapping_of_tables_keeps_its_column_names(ratings, tiny_params):
    # fitted from a TaskSet or a mapping, a model forgot the names and scored reordered
    # columns silently
    pd = pytest.importorskip("pandas")
    from sklearn_piaa import TaskSet, TaskVectorRegressor
    from sklearn_piaa.baselines import UserRidgeRegressor

    X, y, groups = ratings
    columns = [f"c{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    mapping = {r: (df[groups == r], y[groups == r]) for r in np.unique(groups)}
    models = [MetaAestheticRegressor(**tiny_params).fit(TaskSet.from_arrays(df, y, groups)),
              MetaAestheticRegressor(**tiny_params).fit(mapping),
              UserRidgeRegressor(backbone=None).fit(mapping),
              TaskVectorRegressor(MetaAestheticRegressor(**tiny_params), n_sources=2,
                                  source_epochs=1, random_state=0).fit(mapping)]
    for model in models:
        fitted = model.base_ if isinstance(model, TaskVectorRegressor) else model
        assert list(fitted.feature_names_in_) == columns
        model.predict(df.iloc[:3])
        with pytest.raises(ValueError, match="feature names should match"):
            model.predict(df[columns[::-1]].iloc[:3])


def test_a_mappings_bad_rows_are_named_by_rater(ratings, tiny_params):
    # errors gave row numbers of the joined array, and no rater
    X, y, _ = ratings
    bob = X[20:40].copy()
    bob[3, 1] = np.nan
    meta = MetaAestheticRegressor(**tiny_params)
    with pytest.raises(ValueError, match=r"rater 'bob': X has NaN .* \(row 3, counting from 0\)"):
        meta.fit({"alice": (X[:20], y[:20]), "bob": (bob, y[20:40]), "carol": (X[40:60], y[:20])})
    with pytest.raises(ValueError, match=r"other widths than the first rater's 8 .*'bob' \(7\)"):
        meta.fit({"alice": (X[:20], y[:20]), "bob": (X[20:40, :7], y[20:40])})
    scores = y[:40].copy()
    scores[25] = np.nan
    with pytest.raises(ValueError, match=r"from rater\(s\) 1;"):
        meta.fit(X[:40], scores, groups=np.repeat([0, 1], 20))


def test_inputs_of_the_wrong_kind_are_named(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    from sklearn_piaa.baselines import UserRidgeRegressor

    ridge = UserRidgeRegressor(backbone=None).fit(X, y, groups=groups)
    for model in (meta, ridge):
        with pytest.raises(ValueError, match="1-D array of 8 numbers; it must be 2-D"):
            model.personalize(X[0], y[:1])  # was "X has 8 images but y has 1 scores"
    with pytest.raises(ValueError, match="backbone=None needs X as a 2-D array of "
                                         "precomputed features; got images"):
        MetaAestheticRegressor(**tiny_params).fit(["a.jpg"] * 4, y[:4], groups=[0, 0, 1, 1])
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame(X[:40], columns=[f"c{i}" for i in range(8)]).assign(
        photo=["x.jpg"] * 40)
    with pytest.raises(ValueError, match=r"column\(s\) \['photo'\] are not numbers"):
        MetaAestheticRegressor(**tiny_params).fit(table, y[:40], groups=groups[:40])
    fitted = MetaAestheticRegressor(**tiny_params).fit(table.iloc[:, :8], y[:40],
                                                       groups=groups[:40])
    with pytest.raises(ValueError, match=r"column\(s\) \['c3'\] are not numbers"):
        fitted.predict(table.iloc[:, :8].assign(c3="n/a"))


@pytest.mark.parametrize("X, hint", [
    (Image.new("RGB", (8, 8)), r"got Image\. One image is given: pass a list, \[image\]"),
    (np.zeros((8, 8, 3), np.uint8), r"One colour image \(H, W, 3\)\? Pass \[X\]"),
    (np.zeros((2, 8, 8), np.uint8), r"Greyscale images \(N, H, W\)\? .*X\[\.\.\., None\]"),
    ([b"a.jpg", b"b.jpg"], r"got a list\. Paths given as bytes are not taken: .*os\.fsdecode"),
    (np.array([b"a.jpg", b"b.jpg"]), r"X holds bytes .*os\.fsdecode"),
    ([np.zeros((1, 8, 8, 3), np.uint8)] * 2, r"X\[0\] has shape \(1, 8, 8, 3\), a batch of one"),
    ([torch.zeros(8, 8, 3, dtype=torch.uint8)] * 2, r"X\[0\] is a Tensor; .*tensor\.numpy"),
])
def test_images_in_another_form_are_told_what_to_pass(X, hint):
    # each was "X must be image paths, ...; got list" (or JpegImageFile), no more
    with pytest.raises(ValueError, match=hint):
        embed_images(X, backbone="tiny_cnn")


def test_float_image_arrays_are_refused_once_with_the_cast_to_use():
    # the same reason ten times over, no cast; with on_error="skip", every score NaN
    pixels = np.random.RandomState(0).rand(12, 8, 8, 3)
    with pytest.raises(ValueError, match=r"^image arrays must be uint8 \(0-255\); got dtype "
                                         r"float64, values \S+ to 0\.\d+: np\.clip\(X \* "
                                         r"255, 0, 255\)\.round\(\)\.astype\(np\.uint8\)"):
        embed_images(pixels, backbone="tiny_cnn")
    meta = MetaAestheticRegressor(backbone="tiny_cnn", n_iterations=1, support_size=2,
                                  query_size=2, hidden_sizes=(4,), on_error="skip",
                                  random_state=0)
    meta.fit(np.zeros((8, 8, 8, 3), np.uint8) + np.arange(8)[:, None, None, None].astype(
        np.uint8) * 30, np.arange(8.0), groups=np.repeat(["a", "b"], 4))
    with pytest.raises(ValueError, match=r"^image arrays must be uint8"):
        meta.predict(pixels)
    with pytest.raises(ValueError, match=r"^12 images cannot be read: each: image arrays must be "
                                         r"uint8 \(0-255\); got dtype float64: np\.clip\(x, 0, "
                                         r"255\)[^;]*\. Fix or remove them"):
        embed_images(list(pixels), backbone="tiny_cnn")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unique_rows_is_numpys_unique_of_rows(dtype):
    # np.unique(axis=0) sorted every row of a rater table (each image 5-30 times): 25-30 s
    # and 2 GB for FLICKR-AES's 187,726 rows in each baseline fit and selector fit.
    from sklearn_piaa._inputs import unique_rows

    rng = np.random.RandomState(0)
    F = rng.randn(300, 16).astype(dtype)[rng.randint(0, 300, 2000)]
    F[3, 2] = -0.0
    F[4, 2] = 0.0
    unique, inverse = unique_rows(F, block=64)
    expected, expected_inverse = np.unique(F, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))


@pytest.mark.parametrize("case", ["random", "first column tied", "few values"])
def test_unique_rows_orders_distinct_images_as_numpy_does(case):
    # numpy's own sort of the distinct rows took 8 s for FLICKR-AES's 40,000 images
    from sklearn_piaa._inputs import _row_order, unique_rows

    rng = np.random.RandomState(0)
    images = rng.randn(500, 8).astype(np.float32)
    if case == "first column tied":
        images[:, 0] = np.where(rng.rand(500) < 0.7, 0.0, images[:, 0])
    if case == "few values":
        images = rng.randint(-1, 2, (500, 8)).astype(np.float32)
    F = images[rng.randint(0, 500, 3000)]
    first = np.unique(F, axis=0, return_index=True)[1]
    assert _row_order(F, rng.permutation(first)) is not None  # not numpy's fallback
    unique, inverse = unique_rows(F, block=256)
    expected, expected_inverse = np.unique(F, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))


def test_unique_rows_tells_apart_rows_of_one_hash():
    from sklearn_piaa._inputs import unique_rows

    weights = np.random.RandomState(0).randint(1, 2**62, size=2, dtype=np.uint64) * 2 + 1
    a = np.array([[7, 9]], dtype=np.uint64)
    b = a.copy()  # a . weights == b . weights (mod 2**64), another row
    with np.errstate(over="ignore"):  # unsigned wrap-around is the point
        b[0, 0] += weights[1]
        b[0, 1] -= weights[0]
    F = np.concatenate([a, b, a]).view(np.float64)
    unique, inverse = unique_rows(F)
    expected, expected_inverse = np.unique(F, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))
    assert len(unique) == 2


def _groups(n):
    return np.repeat(["a", "b"], n // 2)


def test_int32_scores_that_float32_merges_are_warned_about():
    # int32 holds 2**24 + 1 exactly, float32 does not: the two scores train as one.
    y = (2**24 + np.arange(10)).astype(np.int32)
    X = np.random.RandomState(0).randn(10, 4).astype(np.float32)
    with pytest.warns(PIAAWarning, match=r"y holds 10 distinct scores, but float32"):
        TaskSet(X, y, _groups(10))
    # int16 scores are all exact in float32: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        TaskSet(X, np.arange(10, dtype=np.int16), _groups(10))


def test_scores_merged_by_float32_a_ten_thousandth_of_the_span_apart_are_warned_about():
    # 1e8 and 1e8 + 1 become one float32 score; their gap is 1e-4 of the span (1e4),
    # far beyond the millionth left out as float64 noise.
    y = 1e8 + np.r_[0.0, 1.0, np.full(8, 1e4)]
    X = np.random.RandomState(0).randn(10, 4).astype(np.float32)
    with pytest.warns(PIAAWarning, match=r"y holds 3 distinct scores, but float32 .* keeps 2"):
        TaskSet(X, y, _groups(10))


def test_an_infinite_ridge_penalty_is_refused():
    # alphas must be "positive finite numbers": inf passes a test of > 0 alone.
    from sklearn_piaa._inputs import check_alphas
    from sklearn_piaa.baselines import UserRidgeRegressor

    with pytest.raises(ValueError, match="alphas must be positive"):
        check_alphas((1.0, np.inf))
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 4).astype(np.float32), rng.randint(1, 6, 40).astype(float)
    with pytest.raises(ValueError, match="alphas must be positive"):
        UserRidgeRegressor(alphas=(np.inf,)).fit(X, y, groups=_groups(40))


def test_column_names_that_mix_strings_and_numbers_are_refused():
    # Kept as no names, a table of embedding columns 0..n joined to named ones would be
    # predicted in any column order without an error.
    pd = pytest.importorskip("pandas")

    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(10, 3).astype(np.float32), columns=["a", 1, 2])
    with pytest.raises(TypeError, match="column names mix strings and other types"):
        TaskSet(X, rng.randint(1, 6, 10).astype(float), _groups(10))


def test_a_rating_is_a_stray_only_beyond_three_times_the_span_of_the_rest():
    # Ratings 1-5 (span 4 above the bottom ratings): 16 lies 11 beyond 5, under 3 spans,
    # and is a rare end of the scale; 18 lies 13 beyond, a stray.
    from sklearn_piaa._inputs import stray_scores

    base = np.random.RandomState(0).randint(1, 6, 200).astype(float)
    for value, n_far in [(16.0, 0), (18.0, 1)]:
        y = base.copy()
        y[0] = value
        far, core = stray_scores(y)
        assert far.sum() == n_far
        assert core == ((1.0, 5.0) if n_far else (1.0, value))


def test_unique_rows_with_rows_equal_as_numbers_in_a_tied_run_is_numpys():
    # [1, 0] and [1, -0.0] differ in bits but not as numbers; numpy merges them, within a
    # run of rows that tie on the first column.
    from sklearn_piaa._inputs import unique_rows

    F = np.array([[1.0, 0.0], [1.0, -0.0], [0.5, 2.0], [1.0, 3.0], [1.0, 0.0]],
                 dtype=np.float32)
    unique, inverse = unique_rows(F)
    expected, expected_inverse = np.unique(F, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, expected)  # -0.0 == 0.0
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))


def test_strays_of_exactly_the_share_at_one_end_or_beyond_it_overall_are_named():
    # share=0.05 is "at most 5%": 10 of 200 ratings of 99 are strays. With 10 more of -99
    # (10% in all), the 99s are still cut; the -99s, beyond the share left, are kept.
    from sklearn_piaa._inputs import stray_scores

    base = np.random.RandomState(0).randint(1, 6, 200).astype(float)
    y = base.copy()
    y[:10] = 99
    far, core = stray_scores(y)
    assert far.sum() == 10 and core == (1.0, 5.0)
    y[10:20] = -99
    far, core = stray_scores(y)
    assert far.sum() == 10 and core == (-99.0, 5.0)


def test_greyscale_image_arrays_with_one_channel_are_images():
    from sklearn_piaa._inputs import input_kind

    assert input_kind(np.zeros((2, 8, 8, 1), dtype=np.uint8)) == "images"
    with pytest.raises(ValueError, match="channels last"):
        input_kind(np.zeros((2, 8, 8, 2), dtype=np.uint8))
