"""``sklearn-piaa table1``: every method on the same held-out raters and support draws."""

import time
import warnings

from ._cli_common import (
    BENCHMARK_DEFAULTS,
    check_benchmark_sizes,
    given_table_options,
    image_files,
    plural,
    printer,
    read_data,
    unused_benchmark_options,
)
from ._names import TABLE1_METHODS
from ._warnings import PIAAWarning

__all__ = ["run_table1", "ATTRIBUTE_METHODS"]

#: Rows that need the images' measured attributes (``--attributes``).
ATTRIBUTE_METHODS = ("pam", "pam_attributes")


def _table1_methods(args):
    """The rows of ``table1``: ``--algorithms``, or the defaults the data allows."""
    names = args.algorithms
    with_attributes = getattr(args, "attributes", False)
    with_personality = getattr(args, "personality", None) is not None
    if names is None:
        names = list(TABLE1_METHODS)

        def insert(new, before):
            at = names.index(before) if before in names else len(names)
            names[at:at] = new

        if with_attributes:
            insert(list(ATTRIBUTE_METHODS), "pam_content")
        if with_personality:
            insert(["pa_iaa"], "ridge")
        return names
    # The flags add rows to the default list only: say so rather than add nothing quietly.
    if with_attributes and not any(n in ATTRIBUTE_METHODS for n in names):
        warnings.warn("--attributes adds the PAM rows to the default list only; with "
                      f"--algorithms, name {' or '.join(ATTRIBUTE_METHODS)} to run them.",
                      PIAAWarning, stacklevel=2)
    if with_personality and "pa_iaa" not in names:
        warnings.warn("--personality adds the pa_iaa row to the default list only; with "
                      "--algorithms, name pa_iaa to run it.", PIAAWarning, stacklevel=2)
    needs = [n for n in names if n in ATTRIBUTE_METHODS]
    if needs and not with_attributes:
        raise SystemExit(f"{', '.join(needs)} use(s) the images' measured attributes: add "
                         "--attributes.")
    if "pa_iaa" in names and not with_personality:
        raise SystemExit("pa_iaa needs the raters' Big-Five personality: add --personality "
                         "(built-in benchmark) or --personality FILE (with --ratings).")
    return names


def _column_among(path, candidates):
    """The first of ``candidates`` the CSV at ``path`` has in its header, else the first
    (reading errors are left to the reader, which names them)."""
    from .datasets._table import _read_text
    from .datasets.readers import _header

    try:
        names = _header(_read_text(path))[1]
    except (OSError, ValueError):
        return candidates[0]
    return next((c for c in candidates if c in names), candidates[0])


def _check_personality_source(args):
    """Refuse a ``--personality`` the data source cannot use, before any work."""
    given = getattr(args, "personality", None)
    if getattr(args, "trait_cols", None) and given in (None, True):
        raise SystemExit("--trait-cols names the columns of a --personality FILE; give one "
                         "(with --ratings).")
    if given is None:
        return
    if getattr(args, "photos", None):
        raise SystemExit("--personality: the simulated raters of --photos have no "
                         "personality; use the built-in benchmark (--personality) or your "
                         "own raters (--ratings CSV --personality FILE).")
    if args.ratings and given is True:
        raise SystemExit(f"--personality needs a FILE with --ratings: a CSV with a "
                         f"{args.rater_col!r} column and five trait columns in [-1, 1], one "
                         f"row per rater of {args.ratings}.")
    if not args.ratings and given is not True:
        raise SystemExit("--personality FILE goes with --ratings; the built-in benchmark "
                         "makes its own raters' personality table: give --personality "
                         "without a file.")


def _official_split(args, fmt, data):
    """The data set's own (train, test) raters, which replace ``--test-fraction``."""
    if args.test_fraction is not None and getattr(args, "test_raters", None):
        raise SystemExit("--test-fraction with --test-raters: give one of them.")
    if args.test_fraction is not None:
        raise SystemExit(f"--test-fraction with --format {fmt}: the data set defines its "
                         f"test raters ({len(data.test_raters)}), and they are held out; "
                         "leave --test-fraction out, or read the ratings as a table "
                         "(--format table) to hold out raters drawn at random.")
    if not data.train_raters:
        raise SystemExit(f"{args.ratings} (--format {fmt}) has test raters only: table1 "
                         "meta-trains on other raters. Meta-train a prior on another data "
                         "set and run sklearn-piaa evaluate on this one.")
    return list(data.train_raters), list(data.test_raters)


def _row_attributes(X, inverse):
    """Measured attributes of each row's image, measuring each distinct image once."""
    import numpy as np

    from .datasets import measure_attributes

    first = np.unique(inverse, return_index=True)[1]
    return measure_attributes([X[i] for i in first])[0][inverse]


def run_table1(args, out=None):
    """Run ``sklearn-piaa table1`` for parsed ``args``; returns the results dict.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``sklearn-piaa table1``, as its parser makes them.
    out : file-like, default=None
        Where this function's progress lines go; ``None`` means standard output.
        Progress bars go to standard error, and
        :func:`~sklearn_piaa.report.compare_methods` prints its per-method lines to
        standard output whatever ``out`` is.

    Returns
    -------
    dict
        Method name -> :class:`~sklearn_piaa.PersonalizationResult`, as from
        :func:`~sklearn_piaa.report.compare_methods`.

    Raises
    ------
    SystemExit
        With a message, before any embedding: for ``--algorithms`` that need
        ``--attributes`` or ``--personality`` not given, a ``--personality`` the data
        source cannot use (or an unreadable personality file), table options without
        ``--ratings``, or a ``--photos`` folder without images.
    ValueError, OSError
        From the ratings reader, the image embedder or
        :func:`~sklearn_piaa.report.compare_methods`, for a missing or unreadable file
        or an invalid setting; :func:`console` prints them as one line.
    """
    # Imported here, not at the top: the command line's parser imports this module, and
    # --help need not wait seconds for torch and scikit-learn.
    import numpy as np

    from ._device import resolve_device, seeded
    from ._features import ImageEmbedder
    from ._inputs import take
    from ._tasks import TaskSet
    from .datasets import (
        make_aesthetic_benchmark,
        measure_attributes,
        read_personality,
        simulate_raters,
    )
    from .datasets._table import DATA_SETS
    from .model_selection import UserGroupShuffleSplit
    from .nn import load_backbone
    from .report import compare_methods, format_table

    say = printer(out)
    t0 = time.perf_counter()
    algorithms = _table1_methods(args)
    _check_personality_source(args)
    unused = given_table_options(args)
    fmt = getattr(args, "format", "table")
    held_out = getattr(args, "test_raters", None)
    if (unused or fmt != "table" or held_out) and not args.ratings:
        source = "--photos" if getattr(args, "photos", None) else "the built-in benchmark"
        given = (unused or (f"--format {fmt} does not apply" if fmt != "table"
                            else "--test-raters does not apply"))
        raise SystemExit(f"{given} without --ratings: they describe a ratings CSV or data "
                         f"set, and {source} reads none.")
    # --photos simulates raters on the photos it finds; --ratings reads both
    if args.ratings:
        used = ()
    elif getattr(args, "photos", None):
        used = ("n_raters", "images_per_rater")
    else:
        used = tuple(BENCHMARK_DEFAULTS)
    ignored = unused_benchmark_options(args, used)
    if ignored:
        source = ("--ratings reads its raters and images" if args.ratings
                  else "--photos uses every photo of its folder, at its own size")
        raise SystemExit(f"{', '.join(ignored)} {'sizes' if len(ignored) == 1 else 'size'} "
                         "the built-in benchmark, and "
                         f"{source}: leave {'it' if len(ignored) == 1 else 'them'} out.")
    want_attributes = any(n in ATTRIBUTE_METHODS for n in algorithms)
    given_personality = getattr(args, "personality", None)
    attributes = personality = None  # per-row measured attributes; rater -> traits
    split = None  # (train raters, test raters) where the data set defines them
    if args.ratings:
        data = read_data(args.ratings, args, name="--ratings")
        X, y, groups = data.X, data.y, np.asarray(data.groups)
        if data.test_raters is not None:
            split = _official_split(args, fmt, data)
            # raters in neither side (the reader named them) are neither embedded nor used
            keep = np.flatnonzero(np.isin(groups, split[0] + split[1]))
            X, y, groups = take(X, keep), y[keep], groups[keep]
        if given_personality is not None:
            # A data set's raters go by its own id column (PARA's user file: userId);
            # --rater-col is refused with --format.
            # AADB has two layouts, ids in workerID or in Mechanical Turk's WorkerId: the
            # one the personality file has
            rater_col = _column_among(given_personality, [d[4][0] for d in DATA_SETS
                                                          if d[1] == fmt] or [args.rater_col])
            try:
                personality = read_personality(given_personality, groups.tolist(),
                                               rater_col, args.image_col,
                                               ratings=args.ratings,
                                               trait_cols=getattr(args, "trait_cols", None))
            except (OSError, ValueError) as exc:
                raise SystemExit(str(exc)) from None
    elif getattr(args, "photos", None):
        files = image_files([args.photos])
        per_rater = args.images_per_rater
        if per_rater > len(files):
            if per_rater != BENCHMARK_DEFAULTS["images_per_rater"]:
                # as the built-in benchmark refuses it: capped, it ran without a word
                raise SystemExit(f"--images-per-rater {per_rater} exceeds the "
                                 f"{len(files)} photos of --photos {args.photos}: each "
                                 "simulated rater rates distinct photos.")
            per_rater = len(files)
            say(f"each simulated rater rates all {len(files)} photos (fewer than "
                f"--images-per-rater's default {args.images_per_rater})")
        measured, _ = measure_attributes(files)
        data = simulate_raters(measured, n_raters=args.n_raters,
                               images_per_rater=per_rater, random_state=args.random_state)
        X = [files[i] for i in data.image_index]
        y, groups = data.y, data.groups
        if want_attributes:
            attributes = measured[data.image_index]  # already measured for the raters
        say(f"{len(files)} photos measured; {args.n_raters} simulated raters "
            f"({time.perf_counter() - t0:.1f}s)")
    else:
        check_benchmark_sizes(args.n_images, args.images_per_rater)
        data = make_aesthetic_benchmark(n_images=args.n_images, n_raters=args.n_raters,
                                        images_per_rater=args.images_per_rater,
                                        image_size=args.image_size,
                                        random_state=args.random_state,
                                        personality=given_personality is not None)
        # A list of views: no copy of the pixels per rating.
        X = [data.images[i] for i in data.image_index]
        y, groups = data.y, data.groups
        personality = data.get("personality")
    n_raters = len(set(np.asarray(groups).tolist()))
    fraction = 0.2 if args.test_fraction is None else args.test_fraction
    if split is None and (not 0 < fraction < 1 or n_raters < 2):
        raise ValueError(f"--test-fraction {fraction:g} of {n_raters} rater(s) "
                         "must leave at least one training and one test rater: give a "
                         "fraction between 0 and 1, and at least 2 raters.")
    # Embed each distinct image once; every method then trains on the same features.
    with seeded(args.random_state):  # a backbone without pretrained weights (tiny_cnn)
        backbone = load_backbone(args.backbone, getattr(args, "backbone_weights", None))
    embedder = ImageEmbedder(backbone, resolve_device("cpu"),
                             progress=not getattr(args, "quiet", True))
    unique, inverse = embedder.transform_unique(X, strict_cache=True)
    F = unique[inverse]
    if want_attributes and attributes is None:
        attributes = _row_attributes(X, inverse)
        say(f"attributes measured on {len(unique)} images ({time.perf_counter() - t0:.1f}s)")
    if split is None:
        train, test = next(UserGroupShuffleSplit(1, test_size=fraction,
                                                 random_state=args.random_state)
                           .split(F, y, groups))
    else:
        held = np.isin(groups, split[1])
        train, test = np.flatnonzero(~held), np.flatnonzero(held)
    official = ("" if split is None else
                f": those of {args.test_raters}" if getattr(args, "test_raters", None)
                else ": the data set's test raters")
    say(f"{len(set(groups))} raters ({len(set(groups[test]))} held out{official}), "
        f"{len(unique)} images embedded ({time.perf_counter() - t0:.1f}s)")
    # MAML's outer step is an Adam learning rate, not BLG's interpolation weight.
    method_params = {name: {"outer_lr": args.maml_outer_lr} for name in ("maml", "fomaml")}
    method_tasks = {}
    if attributes is not None:
        # PAM sees the embedding with the attributes appended; the rows (and so the
        # support draws) are the same as every other method's.
        FA = np.hstack([F, attributes.astype(F.dtype)])
        cols = list(range(F.shape[1], FA.shape[1]))
        tasks = (TaskSet.from_arrays(FA[train], y[train], groups[train]),
                 TaskSet.from_arrays(FA[test], y[test], groups[test]))
        for name in ATTRIBUTE_METHODS:
            method_params[name] = {"attribute_columns": cols}
            method_tasks[name] = tasks
    if personality is not None:
        method_params["pa_iaa"] = {"personality": personality}
    results = compare_methods(
        TaskSet.from_arrays(F[train], y[train], groups[train]),
        TaskSet.from_arrays(F[test], y[test], groups[test]),
        algorithms=algorithms, n_support=tuple(args.n_support),
        n_repeats=args.n_repeats, random_state=args.random_state, n_jobs=args.n_jobs,
        score_range=getattr(args, "score_range", None),
        verbose=1, backbone=None, n_iterations=args.n_iterations, outer_lr=args.outer_lr,
        method_params=method_params, method_tasks=method_tasks)
    say(f"\nSROCC on held-out raters, mean ± std over raters ({plural(args.n_repeats, 'draw')} "
        "each)")
    say(format_table(results))
    say(f"total {time.perf_counter() - t0:.1f}s")
    return results
