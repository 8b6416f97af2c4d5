"""Command line: ``sklearn-piaa demo`` runs the main job on the built-in benchmark.

``meta-train``, ``personalize``, ``predict`` and ``evaluate`` work on your own data:
a ratings CSV (one row per rater, image, score) or a data set folder read by
:mod:`sklearn_piaa.datasets`; models are saved with :func:`~sklearn_piaa.save_model`.
"""

import csv
import io
import os
import sys
import time
import traceback
import warnings

# Nothing heavy is imported here: --help, --version and a mistyped option answer at once,
# instead of after the seconds that torch and scikit-learn take to import. The functions
# that run a command import the rest (numpy too) when it runs.
from ._cli_common import (
    check_benchmark_sizes,
    image_extensions,
    image_files,
    keep_freed_memory,
    plural,
    printer,
    read_data,
)
from ._cli_parser import build_parser, negative_ranges
from ._cli_table1 import run_table1
from ._io import atomic_write, check_output_file, folder_path
from ._messages import listing

__all__ = ["console", "main", "run_demo", "run_table1", "run_meta_train", "run_personalize",
           "run_predict", "run_evaluate"]


def run_demo(n_images=1200, n_raters=60, images_per_rater=160, image_size=128,
             n_test_raters=12, n_support=(10, 100), n_repeats=3, backbone="efficientnet_lite0",
             n_iterations=300, outer_lr=0.1, random_state=0, verbose=1, out=None,
             backbone_weights=None):
    """Meta-train on the built-in benchmark and report prior vs personalized SROCC.

    Parameters
    ----------
    n_images, n_raters, images_per_rater, image_size : int
        Size of the generated benchmark (see
        :func:`~sklearn_piaa.datasets.make_aesthetic_benchmark`).
    n_test_raters : int, default=12
        Raters held out of meta-training and personalized.
    n_support : tuple of int, default=(10, 100)
        Support sizes to personalize on.
    n_repeats : int, default=3
        Random support draws per held-out rater.
    backbone : str, default="efficientnet_lite0"
    n_iterations : int, default=300
    outer_lr : float, default=0.1
    random_state : int, default=0
    verbose : int, default=1
    out : file-like, default=None
        Where to print; ``None`` means standard output.
    backbone_weights : str or path-like, default=None
        Local weights file of ``backbone`` (resnet18, alexnet and inception_v3 ship
        none).

    Returns
    -------
    PersonalizationResult
    """
    import numpy as np

    from ._estimator import MetaAestheticRegressor
    from ._tasks import TaskSet
    from .datasets import consensus_agreement, make_aesthetic_benchmark
    from .evaluation import evaluate_personalization

    say = printer(out)
    # before the benchmark is built, and in the command's words
    check_benchmark_sizes(n_images, images_per_rater)
    if not 1 <= n_test_raters < n_raters:
        raise ValueError(f"--n-test-raters {n_test_raters} must be at least 1 and below "
                         f"--n-raters {n_raters} (some raters meta-train, the others test).")
    # every test rater has images_per_rater images: a size none reaches was refused by
    # the evaluation only after the benchmark was built and the prior meta-trained
    beyond = [k for k in n_support if k + 2 > images_per_rater]
    if beyond:
        raise ValueError(f"--n-support {' '.join(map(str, beyond))}: each test rater has "
                         f"--images-per-rater {images_per_rater} images, and a draw needs "
                         f"n_support + 2 (at least 2 query images); give at most "
                         f"{images_per_rater - 2}.")
    t0 = time.perf_counter()
    data = make_aesthetic_benchmark(n_images=n_images, n_raters=n_raters,
                                    images_per_rater=images_per_rater, image_size=image_size,
                                    random_state=random_state)
    agree = consensus_agreement(data.y, data.groups, data.image_index)
    say(f"built-in benchmark: {n_images} images, {n_raters} raters x {images_per_rater} "
        f"ratings; rater vs leave-one-out consensus SROCC {np.nanmean(agree):.2f} "
        f"({time.perf_counter() - t0:.1f}s)")
    X = data.images[data.image_index]
    test_raters = data.rater_ids[-n_test_raters:]
    test = np.isin(data.groups, test_raters)

    meta = MetaAestheticRegressor(backbone=backbone, backbone_weights=backbone_weights,
                                  n_iterations=n_iterations, outer_lr=outer_lr,
                                  random_state=random_state, verbose=verbose)
    t1 = time.perf_counter()
    meta.fit(X[~test], data.y[~test], groups=data.groups[~test])
    say(f"meta-trained on {n_raters - n_test_raters} raters: {n_iterations} iterations "
        f"({time.perf_counter() - t1:.1f}s, of which meta-training {meta.fit_time_:.1f}s)")

    t2 = time.perf_counter()
    result = evaluate_personalization(
        meta, TaskSet.from_arrays(X[test], data.y[test], data.groups[test]),
        n_support=n_support, n_repeats=n_repeats, random_state=random_state)
    say(f"personalized {plural(len(test_raters), 'rater')} x {plural(n_repeats, 'draw')} on "
        f"{' and '.join(map(str, n_support))} images ({time.perf_counter() - t2:.1f}s)")
    say("")
    say(f"SROCC on held-out raters (mean ± std over {n_test_raters} raters; the prior is "
        "scored on the same query images)")
    say(str(result))
    say(f"total {time.perf_counter() - t0:.1f}s")
    return result


def _read_data(args):
    """The data set named by ``DATA``/``--format``: a Bunch with tasks, train, test."""
    # --on-error skip covers missing image files too: the estimator skips them, warning
    return read_data(args.data, args, check_files=getattr(args, "on_error", "raise") != "skip")


def _check_output(path, *inputs, model=False, keep=()):
    """Refuse an unusable ``-o`` before the command computes anything (SystemExit).

    With ``model``, also an existing file that is not a model file: a model written
    over a ratings table or an image (``-o ratings.csv`` for ``-o me.pt``) would lose
    it, where replacing an earlier model is what rerunning a command does; and a model
    file of a kind in ``keep`` (see :func:`check_model_target`).
    """
    from ._persistence import check_model_target

    if os.fspath(path) == "-":
        raise SystemExit("-o -: this command writes a file, not standard output (only "
                         "predict writes its scores there); give a file name.")
    try:
        check_output_file(path, inputs, what="-o")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if model:
        try:  # save_model's own rule, refused here before the work rather than after it
            check_model_target(path, name=f"-o {path}", keep=keep)
        except FileExistsError as exc:
            raise SystemExit(str(exc)) from None


#: Extensions of -o names that say a format other than the CSV predict and evaluate
#: write (comma-separated text: .csv, .txt and other names are taken as they are).
NOT_CSV = {".json": "JSON", ".jsonl": "JSON lines", ".tsv": "tab-separated values",
           ".parquet": "Parquet", ".feather": "Feather", ".arrow": "Arrow",
           ".xlsx": "an Excel workbook", ".xls": "an Excel workbook",
           ".ods": "a spreadsheet", ".pkl": "a pickle", ".pickle": "a pickle",
           ".npy": "a NumPy array", ".npz": "NumPy arrays", ".h5": "HDF5", ".hdf5": "HDF5",
           ".pt": "a model file", ".pth": "a model file", ".gz": "a compressed file",
           ".bz2": "a compressed file", ".xz": "a compressed file", ".zip": "a zip archive"}


def _check_csv_output(path, what, images=False):
    """Refuse an ``-o`` name whose extension says another format than CSV (SystemExit).

    ``-o scores.json`` silently got a CSV under that name, which a JSON reader then
    fails on (or ``-o other.pt`` replaced a model file with a table).
    """
    ext = os.path.splitext(os.fspath(path))[1]
    # An image's name too (checked after the inputs, whose message says more of a
    # photo of the data given as -o): a later folder search took the table for a photo.
    says = NOT_CSV.get(ext.lower()) or ("an image" if images and ext.lower()
                                        in image_extensions() else None)
    if says:
        raise SystemExit(f"-o {path}: {what} written as CSV (comma-separated text), but the "
                         f"name ends in {ext}, which says {says}; give a name ending in "
                         ".csv.")


def _check_device(device):
    """Refuse an unusable ``--device`` before the command reads anything (SystemExit).

    The estimator or :func:`~sklearn_piaa.load_model` would refuse it too, but only
    after the ratings table and every image file were read and checked (``meta-train``,
    ``evaluate``) or the folders walked (``predict``), and in Python's spelling
    (``device='cpu'``).
    """
    if device is None:  # the model's own device, or the CPU: load_model decides
        return
    from ._device import resolve_device

    try:
        resolve_device(device, option="--device")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


#: The header line predict writes: an existing file starting with it is an earlier
#: output of predict, which predict replaces. Not ``image,score``: that is the header
#: of one person's ratings file, which ``-o`` typed for another name would replace.
PREDICT_HEADER = "image,predicted_score"


def _evaluate_header():
    """The header line evaluate's ``-o`` table starts with (its columns)."""
    from .evaluation import _FIELDS

    return ",".join(name for name, _ in _FIELDS)


def _check_csv_target(path, header, command, what):
    """Refuse ``-o`` where it would replace a file other than an earlier output (SystemExit).

    A file whose first line is exactly ``header`` (what ``command`` writes), an empty
    file and a new name are fine: rerunning a command replaces its output, as it
    should. Any other file -- ``-o ratings.csv`` typed for ``-o scores.csv`` -- would
    be lost, so it is refused, as is one that cannot be read to tell.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return  # a new name, or what check_output_file refuses (a folder)
    try:
        with open(path, "rb") as fh:
            start = fh.read(4096)
    except OSError as exc:
        looks = (f"cannot be read to tell whether it is an earlier output of {command} "
                 f"({exc.strerror or exc})")
    else:
        if not start:
            return  # an empty file holds nothing to lose
        line = start.split(b"\n", 1)[0]
        if line == header.encode():
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\0" in text:
            looks = "is not a text file (an image, a model file?)"
        else:
            shown = text if len(text) <= 80 else text[:77] + "..."
            looks = (f"is not an earlier output of {command}: its first line is {shown!r}, "
                     f"not {header!r}")
    raise SystemExit(f"-o {path}: the file exists and {looks}; writing {what} would replace "
                     "it. Remove the file first, or choose another name.")


def _paths(X):
    """The image file paths among ``X`` (features and arrays name none)."""
    import numpy as np

    if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
        return []
    return [x for x in X if isinstance(x, (str, os.PathLike))]


def run_meta_train(args, out=None):
    """Run ``sklearn-piaa meta-train``: fit a prior on a data set and save it.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``sklearn-piaa meta-train``, as its parser makes them.
    out : file-like, default=None
        Where this function's progress lines go; ``None`` means standard output.
        Progress bars go to standard error.

    Returns
    -------
    MetaAestheticRegressor
        The fitted prior, as saved to ``args.output``.

    Raises
    ------
    SystemExit
        With a message, before any work: for an unusable ``--device`` or ``-o``, or
        table options that ``--format`` would ignore.
    ValueError, OSError
        From the data set's reader or the estimator, for a missing or unreadable file
        or an invalid setting; :func:`console` prints them as one line.
    """
    import numpy as np

    from ._estimator import MetaAestheticRegressor, history_label

    say = printer(out)
    _check_device(args.device)
    # the backbone's weights file is read too
    _check_output(args.output, args.data, *filter(None, [args.backbone_weights]))
    t0 = time.perf_counter()
    data = _read_data(args)
    if data.test is not None and data.train is None:
        # a split whose every rater is a test rater (REAL-CUR has test users only):
        # training on them would leak into their evaluation
        raise ValueError(f"{args.data}: all {plural(len(data.test), 'rater')} of the data "
                         "are test raters, so none is left to meta-train on; meta-train on "
                         "another data set (or one without a test split) and evaluate here.")
    tasks = data.tasks if data.train is None else data.train
    if args.cache_dir is not None and args.train_backbone:
        say("--cache-dir has no effect with --train-backbone: the whole network trains, "
            "so no embeddings are cached")
    # held-out raters' photos too
    _check_output(args.output, *_paths(data.tasks.X), model=True)
    if args.min_images is not None:
        tasks = _leave_out_small(tasks, args, say)
    if args.drop_constant_raters:
        tasks = _leave_out_constant(tasks, args, say)
    say(f"{args.data}: {plural(len(tasks), 'rater')}, {plural(tasks.n_ratings, 'rating')} "
        "for meta-training" + (f" ({plural(len(data.test), 'test rater')} left out)"
                               if data.test is not None else ""))
    # settings that run as asked but not as a reader of the log would think
    if args.n_iterations == 0 and args.algorithm != "none":
        say("--n-iterations 0: no meta-training; the prior's head keeps its initial "
            "weights")
    elif args.on_error != "skip":  # with skip, fit may leave out unreadable raters
        _say_few_raters(args, len(tasks), say)
    meta = MetaAestheticRegressor(
        backbone=args.backbone, backbone_weights=args.backbone_weights,
        train_backbone=args.train_backbone, algorithm=args.algorithm,
        hidden_sizes=tuple(args.hidden_sizes),
        n_iterations=args.n_iterations, tasks_per_batch=args.tasks_per_batch,
        support_size=args.support_size, query_size=args.query_size,
        inner_steps=args.inner_steps, inner_lr=args.inner_lr, outer_lr=args.outer_lr,
        inner_backbone_lr=args.inner_backbone_lr, mixed_precision=args.mixed_precision,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
        finetune_batch_size=args.finetune_batch_size,
        score_range=args.score_range, on_error=args.on_error,
        # said above, as an option: the estimator would warn of it again
        cache_dir=None if args.train_backbone else args.cache_dir,
        device=args.device, checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every, random_state=args.random_state,
        verbose=0 if args.quiet else 1)
    meta.fit(tasks)
    if args.on_error == "skip" and args.n_iterations > 0:
        if len(meta.raters_) < len(tasks):  # fit warned, naming them
            say(f"meta-trained on {plural(len(meta.raters_), 'rater')} of {len(tasks)}: "
                "the others had no readable image")
        _say_few_raters(args, len(meta.raters_), say)
    _save_or_keep(meta, args.output, "prior")
    # fit_time_ counts the runs a checkpoint resumed, which this command's time does
    # not: longer than the command, it counts some
    took = time.perf_counter() - t0
    earlier = (", with the earlier runs of its checkpoint"
               if args.checkpoint_dir and meta.fit_time_ > took else "")
    say(f"prior saved to {args.output} ({took:.1f}s; meta-training "
        f"{meta.fit_time_:.1f}s{earlier})")
    last = meta.history_[-10:]
    if not args.quiet and meta.loss == "mse" and np.isfinite(last).any():
        # the prior's criterion holds the unit meta-training measured the loss in
        _say_loss_unit(history_label(meta.algorithm, meta.loss), float(np.nanmean(last)),
                       f"the last {len(last)} iterations' mean",
                       meta.prior_net_.criterion_.unit, say)
    return meta


def _say_few_raters(args, n_raters, say):
    """Say that each iteration takes every rater, where ``--tasks-per-batch`` asks for
    more raters than the ``n_raters`` trained on."""
    if args.tasks_per_batch > n_raters > 1 and args.algorithm != "none":
        # worded for the default too: "--tasks-per-batch 4" read as an option not given
        say(f"{args.tasks_per_batch} raters per iteration (--tasks-per-batch), but only "
            f"{plural(n_raters, 'rater')}: each iteration takes all {n_raters}")


def _save_or_keep(model, path, what):
    """``save_model(model, path)``; where writing fails, the model kept in a spare file.

    ``-o`` is checked before the work, but a disk that fills during hours of
    meta-training, or a folder removed meanwhile, failed the save at the end and lost
    the trained model with the process. It is then saved in the temporary folder, and
    the error (exit status 1: the file asked for was not written) says where.
    """
    import tempfile

    from ._persistence import save_model

    try:
        save_model(model, path)
    except OSError as exc:
        fd, spare = tempfile.mkstemp(prefix=f"sklearn-piaa-{what.replace(' ', '-')}-",
                                     suffix=".pt")
        os.close(fd)
        try:
            save_model(model, spare)
        except OSError:
            try:
                os.unlink(spare)
            except OSError:
                pass
            raise exc from None  # the same disk, perhaps: nothing could be kept
        raise OSError(f"{exc} The {what} was saved to {spare} instead: move it where it "
                      "belongs.") from None


def _leave_out_small(tasks, args, say):
    """``tasks`` without the raters that have fewer than ``--min-images`` images.

    With ``--on-error skip`` only readable images count: fit would leave the others out
    after this count, training raters below the bound.
    """
    from ._features import unreadable_rows

    readable, unread = "", []
    if args.on_error == "skip":
        bad = unreadable_rows(tasks.X, 224, "skip")  # warns naming them
        if bad.all():
            raise ValueError(f"{args.data}: none of the images could be read "
                             "(--on-error skip).")
        if bad.any():
            kept = tasks.rows(~bad)
            unread = [r for r in tasks.raters if r not in kept.indices]  # none readable
            tasks = kept
        readable = " readable"
    small = unread + [r for r, n in tasks.sizes().items() if n < args.min_images]
    if len(small) == len(tasks) + len(unread):
        raise ValueError(f"{args.data}: all {plural(len(small), 'training rater')} have "
                         f"fewer than {args.min_images}{readable} images (--min-images).")
    if small:
        dropped = set(small)
        tasks = tasks.subset([r for r in tasks.raters if r not in dropped])
        say(f"left out {plural(len(small), 'rater')} with fewer than {args.min_images}"
            f"{readable} images (--min-images): {listing(map(repr, small))}")
    return tasks


def _leave_out_constant(tasks, args, say):
    """``tasks`` without the raters who gave every image the same score
    (``--drop-constant-raters``), named in one line."""
    same = tasks.constant_raters()
    if same and len(same) == len(tasks):
        raise ValueError(f"{args.data}: all {plural(len(tasks), 'training rater')} gave "
                         "every image the same score (--drop-constant-raters).")
    if same:
        tasks = tasks.subset([r for r in tasks.raters if r not in same])
        say(f"left out {plural(len(same), 'rater')} who gave every image the same score "
            "(--drop-constant-raters): "
            + listing(f"{r!r} (all {v:g})" for r, v in same.items()))
    return tasks


def _names_people(column):
    """Whether a column's name says it names people (``user``, ``worker_id``, ...).

    Its words are those the readers split names into when they suggest a rater column,
    so the two agree: a word with digits (``rater1``, a column of one rater's scores in
    a wide table) is not a people word.
    """
    from .datasets._table import PEOPLE_WORDS, _words

    return any(w in PEOPLE_WORDS or w.rstrip("s") in PEOPLE_WORDS for w in _words(column))


def _one_rater(args):
    """``(X, y)`` of the rater in a ratings CSV (``--rater`` picks one of several)."""
    from ._tasks import TaskSet
    from .datasets._table import COLUMN_OPTIONS, _first, _load_table, _read, _require

    cols = (args.rater_col, args.image_col, args.score_col)
    table = _load_table(args.ratings, needed=cols, frame_hint=True)
    if args.rater_col not in table.cols:
        # A file of one person's ratings needs no rater column. The table keeps its file
        # name and line numbers, so that errors name them.
        _require(table, cols[1:], COLUMN_OPTIONS[1:])
        others = [c for c in table.cols if c not in cols[1:]]
        if args.rater is not None:
            raise SystemExit(f"--rater {args.rater} names a rater, but {args.ratings} has no "
                             f"{args.rater_col!r} column (its columns: {list(table.cols)}); "
                             "name its rater column with --rater-col.")
        images = [str(v).strip() for v in table.cols[args.image_col]]
        repeated = len(images) - len(set(images))
        if repeated and others:
            # Several people's ratings under another column name would be averaged
            # into one "rater" without a word.
            raise SystemExit(
                f"{args.ratings} has no {args.rater_col!r} column, so it is read as one "
                f"person's ratings, but {plural(repeated, 'image')} appear(s) more than "
                f"once and it has other columns ({', '.join(map(repr, others[:5]))}): if "
                "one of them names the rater, pass it with --rater-col (and --rater).")
        people = [c for c in others if _names_people(c)
                  and len({str(v).strip() for v in table.cols[c]}) > 1]
        if people:
            # each image rated once, by several people: read as one, it would fine-tune
            # on a mixture of tastes without a word
            raise SystemExit(
                f"{args.ratings} has no {args.rater_col!r} column, so it would be read as "
                f"one person's ratings, but its column {people[0]!r} holds several "
                f"values: if it names the rater, pass --rater-col {people[0]} (and "
                "--rater).")
        table.cols[args.rater_col] = ["you"] * table.n
    # --on-error skip covers missing image files too: personalize skips them, warning
    X, y, groups = _read(table, cols, args.image_root, check_files=args.on_error != "skip",
                         options=COLUMN_OPTIONS)
    data = TaskSet.from_arrays(X, y, groups)
    raters = data.raters
    if args.rater is None and len(raters) > 1:
        raise SystemExit(f"{args.ratings} holds {len(raters)} raters: choose one with "
                         f"--rater (e.g. {', '.join(map(str, raters[:5]))}).")
    rater = raters[0] if args.rater is None else args.rater
    if rater not in data:
        raise SystemExit(f"no rater {rater!r} in {args.ratings}; it has "
                         f"{_first(raters, 10)}.")
    return rater, *data[rater]


def _load(path, device, cache=None):
    """:func:`load_model`, refusing the kinds of model the commands do not take.

    With ``cache`` (the command's options), a warning that the model's own cache folder
    cannot be made here is left out where ``--cache-dir`` or ``--no-cache`` replaces it.
    """
    from ._persistence import load_model
    from ._task_vectors import TaskVectorRegressor
    from ._warnings import CacheDirWarning

    with warnings.catch_warnings():
        if cache is not None and (cache.no_cache or cache.cache_dir is not None):
            warnings.simplefilter("ignore", CacheDirWarning)
        model = load_model(path, device=device)
    if isinstance(model, TaskVectorRegressor):
        raise SystemExit(f"{path} holds a TaskVectorRegressor, which the command line does "
                         "not take: use it from Python (tv.personalize(X, y)), and save "
                         "the net that returns for 'predict'.")
    return model


def _load_prior(path, device, cache=None):
    """A saved prior (meta-learned or baseline) that reads image files."""
    from ._estimator import MetaAestheticRegressor
    from .baselines import BaselineRegressor

    prior = _load(path, device, cache)
    if not isinstance(prior, (MetaAestheticRegressor, BaselineRegressor)):
        raise SystemExit(f"{path} holds a personalized model, not a prior.")
    _check_reads_images(prior, path)
    return prior


def _reading(owner, on_error, quiet):
    """Set how a loaded model reads images: bad files (``--on-error``) and progress bars.

    Both were saved with the model as they were when it was trained; the command line
    decides them for this run.
    """
    from ._estimator import MetaAestheticRegressor
    from ._features import image_reader

    if "on_error" in owner.get_params(deep=False):
        owner.set_params(on_error=on_error)  # a meta-learned prior applies it when used
    if isinstance(owner, MetaAestheticRegressor):
        # its embedder's progress bars follow verbose, which it applies when used
        owner.set_params(verbose=int(not quiet))
    # What decodes the images: how it treats bad files is all that matters.
    adapter = image_reader(owner)
    for attr, value in (("on_error", on_error), ("progress", not quiet)):
        if hasattr(adapter, attr):
            setattr(adapter, attr, value)


def _caching(owner, args, say):
    """Apply ``--cache-dir`` / ``--no-cache`` to a loaded model's embedder.

    Without them the model keeps the cache folder it was saved with -- its author's, in
    a model file from someone else -- and one line (unless ``--quiet``) says where the
    embeddings of the command's images go.
    """
    from ._features import ImageEmbedder, image_reader

    embedder = image_reader(owner)
    if not isinstance(embedder, ImageEmbedder):
        # a whole-network model decodes images for its network: it caches none
        if args.no_cache or args.cache_dir is not None:
            say(f"{'--no-cache' if args.no_cache else '--cache-dir'} has no effect: this "
                "model trains its whole network, which caches no embeddings")
        return
    if args.no_cache or args.cache_dir is not None:
        folder = None if args.no_cache else folder_path(args.cache_dir)
        # The parameter, as in Python, so that a personalized model saved records it; the
        # loaded embedder too, which a loaded personalized net shares with its prior and
        # a baseline reads its folder from.
        owner.set_params(cache_dir=folder)
        embedder.cache_dir = folder
    elif embedder.cache_dir is not None and not args.quiet:
        say(f"embeddings cached in {embedder.cache_dir} (the model's cache_dir; "
            "--cache-dir to change, --no-cache to turn off)")


def _check_reads_images(prior, path):
    if prior.backbone is None:
        raise SystemExit(f"{path} holds a {type(prior).__name__} fitted on precomputed "
                         "features (backbone=None), but the command line reads image files: "
                         "fit it with a backbone (e.g. 'efficientnet_lite0') to use it here.")


def _check_finetune_options(prior, args):
    """Refuse ``--epochs``, ``--lr`` and ``--batch-size`` for a baseline prior (SystemExit).

    A baseline has no fine-tuning to set: ignoring them would report figures of a
    setting that was never applied.
    """
    from .baselines import BaselineRegressor

    given = (args.epochs, args.lr, args.batch_size)
    if isinstance(prior, BaselineRegressor) and any(v is not None for v in given):
        raise SystemExit(f"{args.prior} holds a {type(prior).__name__}, which personalizes "
                         "by ridge regression: --epochs, --lr and --batch-size do not "
                         "apply.")


def run_personalize(args, out=None):
    """Run ``sklearn-piaa personalize``: fit a saved prior to one rater, save the result.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``sklearn-piaa personalize``, as its parser makes them.
    out : file-like, default=None
        Where this function's progress lines go; ``None`` means standard output.
        Progress bars go to standard error, and without ``--quiet`` a network prior's
        skorch epoch table goes to standard output whatever ``out`` is.

    Returns
    -------
    PersonalizedNet or PersonalizedBaseline
        The fitted personalized model, as saved to ``args.output``.

    Raises
    ------
    SystemExit
        With a message: for an unusable ``--device`` (first) or ``-o`` (also one of the
        images the CSV names); a model file that holds no prior, or a prior fitted
        without a backbone; a CSV of several raters without ``--rater``, or a
        ``--rater`` it lacks; ``--rater`` with a CSV without a rater column, or such a
        CSV that repeats images and has other columns (one may name the rater) or has a
        column named for people (``user``, ``worker_id``, ...) that holds several
        values; ``--epochs``, ``--lr`` or ``--batch-size`` with a baseline prior.
    KeyboardInterrupt
        When fine-tuning was interrupted (nothing is saved).
    ValueError, OSError
        From the CSV reader, :func:`~sklearn_piaa.load_model` or the prior, for a
        missing or unreadable file or an invalid setting; :func:`console` prints them as
        one line.
    """
    from ._features import drop_unreadable, image_reader
    from ._inputs import as_indexable, take
    from .baselines import BaselineRegressor

    say = printer(out)
    _check_device(args.device)
    _check_output(args.output, args.prior, args.ratings)
    prior = _load_prior(args.prior, args.device, cache=args)
    _reading(prior, args.on_error, args.quiet)
    _caching(prior, args, say)
    rater, X, y = _one_rater(args)
    # the images the table names are inputs too
    # a personalized model written over a meta-trained prior would lose the prior
    _check_output(args.output, *_paths(X), model=True,
                  keep=("prior", "baseline", "task_vectors"))
    t0 = time.perf_counter()
    n_rated = len(y)
    if args.on_error == "skip":
        # left out here, so that the line below counts the images fine-tuned on; by
        # decoding them (or embedding them, once: the embedder keeps them), not by a
        # prediction, which is a forward pass of the whole network of such a prior
        _, y, kept = drop_unreadable(image_reader(prior), X, y, "skip", return_kept=True)
        X = take(as_indexable(X), kept)
    if isinstance(prior, BaselineRegressor):
        _check_finetune_options(prior, args)
        net = prior.personalize(X, y, score_range=args.score_range)
    else:
        params = {} if args.epochs is None else {"max_epochs": args.epochs}
        if args.lr is not None:
            params["lr"] = args.lr
        if args.batch_size is not None:
            params["batch_size"] = args.batch_size
        net = prior.personalize(X, y, random_state=args.random_state,
                                score_range=args.score_range,
                                verbose=0 if args.quiet else 1, **params)
    _save_or_keep(net, args.output, "personalized model")
    if not args.quiet:
        _say_epoch_loss_unit(net, say)
    skipped = f", {n_rated - len(y)} unreadable left out" if n_rated > len(y) else ""
    say(f"personalized to rater {rater!r} on {plural(len(y), 'image')}{skipped} "
        f"({time.perf_counter() - t0:.1f}s); saved to {args.output}")
    return net


def _say_loss_unit(name, value, of, unit, say, note=""):
    """What a squared-error loss the command showed means in score points.

    The package measures losses in a quarter of the score range (one point of a 1-5
    scale), so on a 0-500 slider a ``train_loss`` of 1.8 is an error of about 170
    points, which the bare number did not say.

    Parameters
    ----------
    name : str
        The loss as the table or progress bar named it.
    value : float
        A value of it, in the loss's unit.
    of : str
        Which value, e.g. "the last epoch's".
    unit : float
        The loss's unit, in score points.
    say : callable
        Prints a line.
    note : str, default=""
        Said after the error, in brackets.
    """
    points = f"{unit:g} score point{'' if unit == 1 else 's'}"
    say(f"{name} is the squared error in units of {points} (a quarter of the score "
        f"range): {of} {value:.4g} is a root-mean-square error of about "
        f"{unit * value ** 0.5:.3g} points" + (f" ({note})" if note else ""))


def _say_epoch_loss_unit(net, say):
    """:func:`_say_loss_unit` for the epoch table of a personalized net."""
    criterion = getattr(net, "criterion_", None)
    losses = [e["train_loss"] for e in getattr(net, "history", []) if "train_loss" in e]
    if getattr(criterion, "kind", None) == "mse" and losses:
        _say_loss_unit("train_loss", losses[-1], "the last epoch's", criterion.unit, say,
                       note="dropout on, over that epoch's batches")


def run_predict(args, out=None):
    """Run ``sklearn-piaa predict``: score images with a saved prior or personalized net.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``sklearn-piaa predict``, as its parser makes them.
    out : file-like, default=None
        Where this function's progress lines go; ``None`` means standard output.
        Progress bars go to standard error. With ``-o -`` the CSV goes to
        ``sys.stdout`` whatever ``out`` is, and no progress line is printed (the line
        naming the model's cache folder goes to standard error).

    Returns
    -------
    files : list of str
        The image files scored: those given, and each folder's images found
        recursively, sorted.
    scores : ndarray of shape (n_files,)
        Their scores; NaN for unreadable images with ``--on-error skip``.

    Raises
    ------
    SystemExit
        With a message: for an unusable ``--device`` (first) or ``-o`` (also one of the
        images scored, a name whose extension says another format than CSV, e.g.
        .json, .tsv, .xlsx, .parquet, .pt or an image's such as .png, or an existing
        file, other than an empty one, that does not start with the line
        ``image,predicted_score`` of an earlier output), an image path that names
        nothing or a folder without images, a model fitted without a
        backbone, or when none of the images can be read (nothing is written).
    ValueError, OSError
        From :func:`~sklearn_piaa.load_model` or the model, for a missing or unreadable
        file (an image, with ``--on-error raise``) or an invalid setting;
        :func:`console` prints them as one line.
    """
    import numpy as np

    from ._personalize import PersonalizedNet
    from .baselines import PersonalizedBaseline

    say = printer(out)
    _check_device(args.device)
    if args.output != "-":
        _check_csv_output(args.output, "the scores are")  # before any folder is walked
    files = image_files(args.images)  # a mistyped path fails before the model loads
    if args.output != "-":
        _check_output(args.output, args.model, *files)  # a folder's images are inputs too
        _check_csv_output(args.output, "the scores are", images=True)
        _check_csv_target(args.output, PREDICT_HEADER, "predict", "the scores")
    model = _load(args.model, device=args.device, cache=args)
    owner = (model.prior_ if isinstance(model, PersonalizedNet)
             else model.prior_ if isinstance(model, PersonalizedBaseline) else model)
    _check_reads_images(owner, args.model)
    _reading(owner, args.on_error, args.quiet)
    # beside the progress bars where standard output carries the scores
    _caching(owner, args, printer(sys.stderr) if args.output == "-" else say)
    t0 = time.perf_counter()
    scores = model.predict(files)
    if np.isnan(scores).all():
        raise SystemExit(f"none of the {plural(len(files), 'image')} could be read (see the "
                         "warning above); nothing was written.")

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(PREDICT_HEADER.split(","))
    # 9 significant digits: a float32 score exactly (6 made ties of distinct scores,
    # and ranks -- SROCC -- computed from the file differed from the model's)
    writer.writerows(zip(files, (f"{s:.9g}" for s in scores)))
    if args.output == "-":
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(text.getvalue())
        else:  # as bytes, so that a file name that is not UTF-8 comes out as it is
            sys.stdout.flush()
            buffer.write(text.getvalue().encode("utf-8", "surrogateescape"))
            buffer.flush()
    else:
        # surrogateescape: a file name that is not UTF-8 is written back as its bytes
        atomic_write(args.output,
                     lambda fh: fh.write(text.getvalue().encode("utf-8", "surrogateescape")))
        say(f"{plural(len(files), 'image')} scored ({time.perf_counter() - t0:.1f}s; "
            f"{int(np.isnan(scores).sum())} unreadable); scores written to {args.output}")
    return files, scores


def run_evaluate(args, out=None):
    """Run ``sklearn-piaa evaluate``: the 10/100-image protocol for a saved prior.

    Each draw fine-tunes with the prior's settings, or those ``--epochs``, ``--lr`` and
    ``--batch-size`` give. The data set's test raters are evaluated where it defines
    them, else all raters (a :class:`~sklearn_piaa.PIAAWarning` names the raters the
    prior was meta-trained on: their figures are not held out); with ``-o`` the
    per-rater, per-draw table is also written as a CSV. Raters skipped at a support
    size, and sizes no rater has enough images for, are named once, with the result
    (not in warnings as well).

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``sklearn-piaa evaluate``, as its parser makes them.
    out : file-like, default=None
        Where this function's progress lines go; ``None`` means standard output.
        Progress bars go to standard error.

    Returns
    -------
    PersonalizationResult

    Raises
    ------
    SystemExit
        With a message: for an unusable ``--device`` (before the data are read) or
        ``-o`` (also a name whose extension says another format than CSV, or an existing
        file, other than an empty one, that does not start with the header line of an
        earlier output), table options that ``--format`` would ignore, a model file that
        holds no prior, a prior fitted without a backbone, or ``--epochs``, ``--lr`` or
        ``--batch-size`` with a baseline prior.
    ValueError, OSError
        From the data set's reader, :func:`~sklearn_piaa.load_model` or the evaluation,
        for a missing or unreadable file or an invalid setting; :func:`console` prints
        them as one line.
    """
    from ._warnings import SkippedWarning
    from .evaluation import evaluate_personalization

    say = printer(out)
    _check_device(args.device)
    if args.output is not None:  # -o '' (an empty shell variable) is refused, not "none"
        _check_csv_output(args.output, "the per-rater table is")
        _check_output(args.output, args.prior, args.data)
    data = _read_data(args)  # a bad table or option fails before the prior is loaded
    if args.output is not None:
        _check_output(args.output, *_paths(data.tasks.X))
        _check_csv_output(args.output, "the per-rater table is", images=True)
        # after the inputs' check, whose message says more of a photo given as -o
        _check_csv_target(args.output, _evaluate_header(), "evaluate", "the per-rater table")
    prior = _load_prior(args.prior, args.device, cache=args)
    _check_finetune_options(prior, args)
    settings = {"finetune_epochs": args.epochs, "finetune_lr": args.lr,
                "finetune_batch_size": args.batch_size}
    # the prior's settings, which every draw (in any --n-jobs worker) fine-tunes with;
    # the default rate then follows --batch-size, as it follows finetune_batch_size
    prior.set_params(**{k: v for k, v in settings.items() if v is not None})
    _reading(prior, args.on_error, args.quiet)
    _caching(prior, args, say)
    tasks = data.test if data.test is not None else data.tasks
    say(f"evaluating {plural(len(tasks), 'rater')} of {args.data} at {args.n_support} "
        f"support images, {plural(args.n_repeats, 'draw')} each")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # The result printed below names the skipped raters and the sizes left out: the
        # warnings listed the same raters again (20 of them twice, at the default 100
        # support images on raters of 55).
        warnings.filterwarnings("ignore", category=SkippedWarning)
        result = evaluate_personalization(prior, tasks, n_support=tuple(args.n_support),
                                          n_repeats=args.n_repeats,
                                          random_state=args.random_state, n_jobs=args.n_jobs,
                                          score_range=args.score_range,
                                          verbose=0 if args.quiet else 1)
    say(str(result))
    say(f"({time.perf_counter() - t0:.1f}s)")
    if args.output is not None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(result.table.dtype.names)
        writer.writerows(result.table.tolist())
        atomic_write(args.output, lambda fh: fh.write(text.getvalue().encode()))
        say(f"per-rater table written to {args.output}")
    return result


def main(argv=None):
    """Run the ``sklearn-piaa`` command line ``argv``, letting errors propagate.

    The installed ``sklearn-piaa`` command is :func:`console`, which calls this and
    prints input errors as one line; call ``main`` from Python to get the exceptions.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the command name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        0 on success.
    """
    parser, _ = build_parser()
    args = parser.parse_args(negative_ranges(sys.argv[1:] if argv is None else list(argv)))
    commands = {"meta-train": run_meta_train, "personalize": run_personalize,
                "predict": run_predict, "evaluate": run_evaluate, "table1": run_table1}
    if args.command in commands:
        commands[args.command](args)
    if args.command == "demo":
        run_demo(n_images=args.n_images, n_raters=args.n_raters,
                 images_per_rater=args.images_per_rater, image_size=args.image_size,
                 n_test_raters=args.n_test_raters, n_support=tuple(args.n_support),
                 n_repeats=args.n_repeats,
                 backbone=args.backbone, backbone_weights=args.backbone_weights,
                 n_iterations=args.n_iterations, outer_lr=args.outer_lr,
                 random_state=args.random_state, verbose=0 if args.quiet else 1)
    return 0


def console(argv=None):
    """The ``sklearn-piaa`` command: :func:`main`, with errors in the input as one line.

    A ValueError or an OSError (a bad table, a missing or unwritable file), a
    FloatingPointError (training diverged), or a SystemExit carrying a message (a
    misused option), is printed as ``sklearn-piaa: error: ...`` with exit status 1,
    not as a traceback; Ctrl-C exits with status 130 and one line. Set the
    environment variable ``SKLEARN_PIAA_TRACEBACK=1`` to see the traceback. argparse's
    own exits (usage errors, ``--help``) carry a status, not a message, and pass through.
    Warnings are printed as one line too (``sklearn-piaa: warning: ...``).

    Parameters
    ----------
    argv : list of str, default=None
        As for :func:`main`.

    Returns
    -------
    int
        0 on success, 1 for an error in the input, 130 when interrupted.
    """
    keep_freed_memory()  # this process is the command's own
    formatted = warnings.formatwarning
    if not os.environ.get("SKLEARN_PIAA_TRACEBACK"):
        warnings.formatwarning = _format_warning
    try:
        return main(argv)
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        if os.environ.get("SKLEARN_PIAA_TRACEBACK"):
            # Python prints an exit's message, never its traceback: asked for, it is here
            traceback.print_exc()
            raise
        print(f"sklearn-piaa: error: {exc.code}", file=sys.stderr)
        return 1
    except (ValueError, OSError, FloatingPointError) as exc:
        if os.environ.get("SKLEARN_PIAA_TRACEBACK"):
            raise
        print(f"sklearn-piaa: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if os.environ.get("SKLEARN_PIAA_TRACEBACK"):
            raise
        # Outputs are written atomically: an interrupted command leaves none half done.
        kept = _checkpoint_dir(sys.argv[1:] if argv is None else argv)
        print("sklearn-piaa: interrupted; nothing was written." if kept is None else
              f"sklearn-piaa: interrupted; no output was written. {kept} keeps the run's "
              "last checkpoint, if it reached one: the same command resumes from it.",
              file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatted


def _checkpoint_dir(argv):
    """The ``--checkpoint-dir`` of a command line, or None.

    Parsed as :func:`main` parsed it: argparse takes abbreviations ("--checkpoint-d"),
    which a search for the option's full name missed.
    """
    try:
        args, _ = build_parser()[0].parse_known_args(negative_ranges(list(argv)))
    except SystemExit:  # already parsed once by main: not expected
        return None
    return getattr(args, "checkpoint_dir", None)


def _format_warning(message, category, filename, lineno, line=None):
    # One line, as errors are: the package's source line means nothing to the user.
    return f"sklearn-piaa: warning: {message}\n"


if __name__ == "__main__":
    sys.exit(console())
