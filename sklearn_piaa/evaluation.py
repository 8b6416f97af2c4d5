"""The paper's evaluation protocol: personalize held-out raters on 10 / 100 images."""

import numbers
import pickle
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed

from ._estimator import _SCALE_CHECKED, check_scales, warn_repeated_images
from ._features import FeatureInput, ImageEmbedder, image_reader
from ._inputs import (
    FEATURES,
    check_feature_names,
    check_verbose,
    input_kind,
    is_count,
    take,
)
from ._messages import listing, pass_score_range
from ._progress import progress
from ._tasks import TaskSet
from ._warnings import PIAAWarning, SkippedWarning, UndefinedSROCCWarning
from .metrics import (
    SROCCSummary,
    _as_is,
    _draw_seeds,
    _personalized_draws,
    _personalizer,
    _readable_rows,
    _srocc,
    _undefined_raters,
    _warn_seen_raters,
    aggregate_srocc,
)
from .support import SupportSelector

__all__ = ["evaluate_personalization", "PersonalizationResult",
           "compare_support_strategies"]

_FIELDS = [("rater", object), ("repeat", np.int64), ("n_support", np.int64),
           ("n_query", np.int64), ("srocc_prior", np.float64),
           ("srocc_personalized", np.float64), ("seed", np.int64)]

# Fewer query images than this make a rater's SROCC a coarse, noisy figure (on 2 images
# it is +-1), yet it weighs as much as any other rater's in the mean: worth a warning.
_FEW_QUERY = 10


@dataclass
class PersonalizationResult:
    """What :func:`evaluate_personalization` measured.

    Attributes
    ----------
    table : structured ndarray
        One row per (rater, repeat, support size) with fields ``rater``, ``repeat``,
        ``n_support``, ``n_query``, ``srocc_prior`` (the prior alone on the same query
        images), ``srocc_personalized`` and ``seed``, the draw's seed (its support and
        query images, and the fine-tuning's seed): two results with the same seeds were
        evaluated on the same draws, which :func:`~sklearn_piaa.report.paired_difference`
        checks.
    summary : dict
        ``n_support -> {"prior": SROCCSummary, "personalized": SROCCSummary}``: mean ±
        std over raters of each rater's mean over its repeats (the population std,
        ``ddof=0``, of :func:`~sklearn_piaa.aggregate_srocc`). A repeat with undefined
        SROCC (constant ratings or predictions on its query images) is left out of its
        rater's mean; a rater with no defined repeat is left out of the mean over raters
        and counted in ``n_dropped``. ``str(result)`` and a warning count the undefined
        repeats; the warning names their raters, with the cause. A support size no rater
        had enough images for has no entry (nor rows in ``table``): ``skipped`` lists all
        its raters, and ``str(result)`` names such sizes in one line.
    skipped : dict
        ``n_support -> [(rater, n_images), ...]``: raters with fewer than
        ``n_support + 2`` images (readable ones, where the model leaves out those it
        cannot read), reported rather than silently dropped.
    method : str or None
        The method name :func:`~sklearn_piaa.report.compare_methods` ran it as (a key
        of :data:`~sklearn_piaa.report.METHOD_LABELS`), by which
        :func:`~sklearn_piaa.report.format_table` labels it under that key; None for a
        result of :func:`evaluate_personalization` itself.
    protocol : str
        The function whose draws these are: ``"evaluate_personalization"`` (support
        drawn first, the rest the query set) or ``"compare_support_strategies"`` (a
        query set of ``n_query`` drawn first, the support picked from the rest). A
        draw's seed means other images under each, so
        :func:`~sklearn_piaa.report.paired_difference` refuses to pair them.
    """

    table: np.ndarray
    summary: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    method: str = None
    protocol: str = "evaluate_personalization"

    def to_frame(self):
        """The table as a :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame({name: self.table[name] for name in self.table.dtype.names})

    def __repr__(self):
        # What a notebook shows: the summary, not a dump of the structured table.
        return (f"PersonalizationResult(table: {len(self.table)} rows, one per rater, "
                f"repeat and support size)\n{self}")

    def __str__(self):
        # the prior's column as wide as its longest cell ("... 2 undefined dropped)")
        width = max([29, *(len(str(s["prior"])) for s in self.summary.values())])
        lines = [f"n_support   {'prior':<{width}} personalized"]
        for k, s in self.summary.items():
            lines.append(f"{k:>9}   {s['prior']!s:<{width}} {s['personalized']}")
        for k in self.summary:
            undefined = _undefined_draws(self.table, k)
            if undefined:
                lines.append(f"undefined SROCC at {k} images: {undefined}, left out of "
                             "their raters' means")
        left_out = [k for k, raters in self.skipped.items() if raters and k not in self.summary]
        if left_out:
            # one line, not the same raters listed again for each such size
            most = max(n for k in left_out for _, n in self.skipped[k])
            lines.append(f"left out n_support={', '.join(map(str, left_out))}: no rater has "
                         f"enough images (the most any has: {most})")
        for k, raters in self.skipped.items():
            if raters and k in self.summary:
                lines.append(f"skipped at {k} images (too few images): "
                             + listing(f"{r!r} ({n})" for r, n in raters))
        fewest = {k: int(self.table["n_query"][self.table["n_support"] == k].min())
                  for k in self.summary if (self.table["n_support"] == k).any()}
        if fewest and min(fewest.values()) < _FEW_QUERY:  # coarse figures among the rest
            lines.append("fewest query images of a rater: "
                         + ", ".join(f"{q} at {k}" for k, q in fewest.items()))
        return "\n".join(lines)


def _one_rater(prior, X, y, rater, seeds, n_support, personalize_params):
    """The rater's table rows, and how many of its images were readable."""
    rows = []
    # The prior is fixed: predict the rater's images once, then index each query set.
    X, y, prior_pred = _readable_rows(prior, X, y)
    _SCALE_CHECKED.on = True  # named once, from all the rater's scores, by the caller
    try:
        for repeat, seed, k, qry, net in _personalized_draws(
                prior, X, y, seeds, n_support, personalize_params=personalize_params):
            (prior_scored, _, prior_why), (scored, _, why) = (
                _srocc(y[qry], prior_pred[qry]), _srocc(y[qry], net.predict(take(X, qry))))
            rows.append((rater, repeat, k, len(qry), prior_scored, scored, seed,
                         (prior_why, why)))
    finally:
        _SCALE_CHECKED.on = False
    return rows, len(y)


def evaluate_personalization(prior, test_tasks, n_support=(10, 100), n_repeats=50,
                             random_state=None, n_jobs=None, score_range=None, verbose=0):
    """Personalize every test rater on random support sets and score SROCC on the rest.

    The protocol of BLG-PIAA [1]_ (and of Ren et al. 2017): for each test rater and
    repeat, draw ``n_support`` of the rater's images at random, fine-tune the prior on
    them (:meth:`MetaAestheticRegressor.personalize`) and compute SROCC on the rater's
    other images; the prior alone is scored on the same query images.

    Parameters
    ----------
    prior : MetaAestheticRegressor
        A fitted estimator (anything with ``predict`` and ``personalize``, e.g. a
        baseline of :mod:`sklearn_piaa.baselines`), or a fitted search of one (its
        ``best_estimator_`` is evaluated).
    test_tasks : TaskSet or dict
        Held-out raters, e.g. ``data.test`` from a reader. Raters the prior was trained
        on (its ``raters_``) are evaluated too, with a :class:`PIAAWarning`: their
        figures are not held-out ones. A dict's rater of empty ``X`` and ``y`` is
        refused, naming it (:meth:`TaskSet.from_mapping`), where a rater of too few
        images is skipped: it has no ratings to count, and most likely comes from a
        filter that kept none.
    n_support : int or tuple of int, default=(10, 100)
        Support sizes, distinct positive integers.
    n_repeats : int, default=50
    random_state : int, RandomState instance or None, default=None
        A fixed value gives the same draws whatever ``n_jobs``, and the same table up
        to rounding (worker processes run torch on fewer threads, which sums in
        another order: an SROCC can move in its third decimal). Each draw is seeded
        from it, the rater's id and the repeat's number: more repeats extend a table,
        and a rater's draws do not depend on the other raters evaluated.
    n_jobs : int, default=None
        Raters are evaluated in parallel through :class:`joblib.Parallel`, in chunks
        of raters (about four per worker); joblib's backends work
        (``with joblib.parallel_config(backend="dask"):`` or ``"ray"`` spreads the
        raters over a cluster) except ``"multiprocessing"``, whose forked workers hang
        in torch's CPU kernels and which is refused with a ValueError. Images a frozen
        backbone embeds are embedded once, in this process, and their embeddings go
        to the worker processes with the raters that need them. On 2 cores,
        ``n_jobs=1`` already runs torch on both: ``n_jobs=2`` gains 1.1-1.3x at most,
        and each worker process first spends seconds importing torch and this package.
    score_range : (float, float), default=None
        The test raters' rating scale when it differs from the prior's, e.g. a prior
        meta-trained on FLICKR-AES (1-5) evaluated on raters of a 0-100 slider;
        passed to :meth:`MetaAestheticRegressor.personalize`.
    verbose : int or bool, default=0
        Show a progress bar over raters on stderr when positive.

    Returns
    -------
    PersonalizationResult
        Raters with fewer than ``n_support + 2`` images are skipped at that size, with
        a :class:`PIAAWarning` naming them (listed in ``skipped``); so are those left
        with too few by the images a prior with ``on_error="skip"`` could not read,
        with a warning of their own. A size that no
        rater has enough images for is left out of ``summary``, with one
        :class:`PIAAWarning` for all such sizes. Raters scored on
        fewer than 10 query images at some size are kept, with one
        :class:`PIAAWarning` naming them and their query sizes: SROCC on a few images
        is coarse, yet weighs as much as any other rater's in the mean.

    Raises
    ------
    ValueError
        When no rater has enough images for any of the sizes: there is nothing to
        evaluate; when a dict maps a rater to no ratings; or when ``n_support`` or
        ``n_repeats`` is not positive integers, or ``n_support`` lists a size twice, or
        ``verbose`` is neither a bool nor an integer of at least 0; or, naming them,
        when test raters have scores outside ``score_range``, or outside a meta-learned
        prior's output range where ``score_range`` is not given. Raters are checked on
        all their scores before any work: ``personalize`` would meet such a score only
        at the draws that put it in a support set.
    TypeError
        When ``prior`` has no ``personalize`` method (a Pipeline, say), or
        ``test_tasks`` is neither a TaskSet nor a dict rater -> (X, y).

    References
    ----------
    .. [1] H. Zhu et al., "Personalized Image Aesthetics Assessment via Meta-Learning
       With Bilevel Gradient Optimization", IEEE Transactions on Cybernetics, 2022.
    """
    prior, test_tasks, n_support = _check_protocol(prior, test_tasks, n_support)
    # up front: personalize meets a score outside the range only at the draws that put
    # it in the support set, so that a run failed or not by the seed
    check_scales(prior, test_tasks, pass_score_range("of theirs") + ".", score_range=score_range)
    n_repeats = _check_repeats(n_repeats)
    check_verbose(verbose)  # before the raters' work, as the estimators check it in fit
    seeds = _draw_seeds(random_state, test_tasks.raters, n_repeats)
    sizes = test_tasks.sizes()
    skipped = {k: [(r, sizes[r]) for r in test_tasks.raters if sizes[r] < k + 2]
               for k in n_support}
    if all(len(raters) == len(test_tasks) for raters in skipped.values()):
        raise ValueError(
            f"no test rater has enough images for any n_support in {list(n_support)} (it "
            f"needs n_support + 2, for at least 2 query images); the largest rater has "
            f"{max(sizes.values())} images.")
    n_support = _reachable(n_support, skipped, len(test_tasks),
                           f"n_support + 2; the largest rater has {max(sizes.values())}")
    for k in n_support:
        if skipped[k]:
            warnings.warn(f"{len(skipped[k])} rater(s) have fewer than {k + 2} images and "
                          f"are skipped at n_support={k}: "
                          + listing(f"{r!r} ({n})" for r, n in skipped[k]),
                          SkippedWarning, stacklevel=2)
    extra = {} if score_range is None else {"score_range": score_range}
    calls = [(*test_tasks[r], r, seeds[i], n_support, extra)
             for i, r in enumerate(test_tasks.raters)]
    bar = progress(total=len(test_tasks), desc="evaluate", unit="rater", enabled=bool(verbose))
    rows, readable = [], {}
    for r, (part, n_readable) in zip(test_tasks.raters,
                                     _each_rater(_one_rater, prior, calls, n_jobs)):
        rows += part
        readable[r] = n_readable
        bar.update()
    bar.close()
    n_support = _skip_unreadable(
        skipped, sizes, readable, n_support, lambda n, k: n < k + 2,
        lambda k: f"fewer than {k + 2} readable images",
        "n_support + 2, for at least 2 query images")
    _warn_few_query(rows, n_support, stacklevel=3)
    return _result(rows, n_support, skipped, model=prior)


def _skip_unreadable(skipped, sizes, readable, n_support, too_few, fewer, need):
    """Skip, as raters of too few images, those that unreadable images left too few.

    A model with ``on_error="skip"`` leaves out the images it cannot read, which the
    count of images made before the work could not know: such a rater was dropped
    from a size's table and means without a word. Each is added to ``skipped[k]``
    (with its readable images) and named in a warning.

    Parameters
    ----------
    skipped : dict
        ``n_support -> [(rater, n_images), ...]``, changed in place.
    sizes, readable : dict
        Each rater's images, and its readable ones, in rater order.
    n_support : tuple of int
    too_few : callable
        ``too_few(n_images, k)``: whether a rater of ``n_images`` is skipped at
        ``n_support=k``, as the protocol counted before the work.
    fewer : callable
        ``fewer(k)``: how few that is, for the warning ("fewer than 7 readable images").
    need : str
        What a rater needs at every size, for the error.

    Returns
    -------
    tuple of int
        The sizes at which some rater was scored.

    Raises
    ------
    ValueError
        When no rater was scored at any size.
    """
    order = {r: i for i, r in enumerate(readable)}
    for k in n_support:
        late = [(r, n) for r, n in readable.items()
                if not too_few(sizes[r], k) and too_few(n, k)]
        if late:
            skipped[k] = sorted(skipped[k] + late, key=lambda item: order[item[0]])
            warnings.warn(
                f"{len(late)} rater(s) have {fewer(k)}, their unreadable ones left "
                f"out, and are skipped at n_support={k}: "
                + listing(f"{r!r} ({n} of {sizes[r]} readable)" for r, n in late),
                SkippedWarning, stacklevel=3)
    scored = tuple(k for k in n_support if len(skipped[k]) < len(readable))
    if not scored:
        raise ValueError(
            f"no test rater has enough readable images for any n_support in "
            f"{list(n_support)} (it needs {need}); the most any has: "
            f"{max(readable.values())}.")
    return scored


def _reachable(n_support, skipped, n_raters, need):
    """The sizes of ``n_support`` that some rater has enough images for; one warning
    names the others (``need``: what a rater needs, for the message).

    A size every rater is skipped at would only list all the raters (again for each
    such size) and show NaN in the summary: the default (10, 100) on raters of 55
    images did both.
    """
    left_out = [k for k in n_support if len(skipped[k]) == n_raters]
    if left_out:
        warnings.warn(f"n_support={', '.join(map(str, left_out))} left out: no test rater "
                      f"has enough images ({need}).", SkippedWarning, stacklevel=3)
    return tuple(k for k in n_support if k not in left_out)


def _personalizable(prior):
    """The model to personalize: ``prior``, or a fitted search's best estimator.

    A Pipeline is refused: the test raters' rows reach ``personalize`` and ``predict``
    as they are, untransformed.
    """
    transform, model = _personalizer(prior)
    if transform is not _as_is:
        raise TypeError(f"prior must be a fitted model with a personalize method (or a "
                        f"fitted search of one); a {type(prior).__name__} has none. For a "
                        "Pipeline, pass its last step and test raters whose X went through "
                        "pipe[:-1].transform.")
    return model


def _check_protocol(prior, test_tasks, n_support):
    """The model, the test raters as a TaskSet and the support sizes as a tuple, checked."""
    prior = _personalizable(prior)
    if isinstance(test_tasks, dict):
        test_tasks = TaskSet.from_mapping(test_tasks)
    if not isinstance(test_tasks, TaskSet):
        raise TypeError("test_tasks must be a TaskSet or a dict rater -> (X, y); got "
                        f"{type(test_tasks).__name__}.")
    adapter = getattr(prior, "input_", None)
    if isinstance(adapter, FeatureInput) and input_kind(test_tasks.X) != FEATURES:
        # its error, before warnings about raters this evaluation will never score
        adapter(take(test_tasks.X, [0]))
    # the rows handed to personalize are plain arrays: check the columns here
    check_feature_names(getattr(prior, "feature_names_in_", None), None,
                        type(prior).__name__, names=test_tasks.feature_names)
    warn_repeated_images(test_tasks, stacklevel=4)
    _warn_seen_raters(prior, test_tasks, stacklevel=4)
    # a 0-d array (np.array(5)) is one size, which tuple() cannot iterate
    n_support = ((n_support,) if np.isscalar(n_support) else
                 (n_support.item(),) if np.ndim(n_support) == 0 else tuple(n_support))
    if not n_support or not all(is_count(k) for k in n_support):
        raise ValueError(f"n_support must be positive integers; got {n_support}.")
    n_support = tuple(int(k) for k in n_support)
    repeated = sorted({k for k in n_support if n_support.count(k) > 1})
    if repeated:
        # Refused rather than dropped: the table would hold each draw twice.
        raise ValueError(f"n_support lists support size(s) {repeated} more than once; got "
                         f"{n_support}.")
    return prior, test_tasks, n_support


def _warn_few_query(rows, n_support, stacklevel):
    """Warn once of the raters of ``rows`` scored on fewer than ``_FEW_QUERY`` query
    images at some size of ``n_support``, each with its smallest query set.

    From the draws as scored, after the work: a model that leaves out unreadable images
    (``on_error="skip"``) scores a rater on fewer query images than it has.
    """
    few = {}
    for rater, _, k, n_query, *_ in rows:
        if k in n_support and n_query < min(_FEW_QUERY, few.get(rater, (np.inf,))[0]):
            few[rater] = (n_query, k)
    if few:
        named = ", ".join(f"{r!r} ({q} at n_support={k})" for r, (q, k) in list(few.items())[:10])
        warnings.warn(
            f"{len(few)} rater(s) are scored on fewer than {_FEW_QUERY} query images: {named}"
            f"{' ...' if len(few) > 10 else ''}. SROCC on so few images is coarse (on 2 it "
            "is +-1), yet each of these raters counts as much as any other in the mean over "
            "raters.", PIAAWarning, stacklevel=stacklevel)


def _check_repeats(n_repeats):
    if not is_count(n_repeats):
        raise ValueError(f"n_repeats must be a positive integer; got {n_repeats!r}.")
    return int(n_repeats)


def _each_rater(func, prior, calls, n_jobs):
    """``func(prior, *args)`` for each ``args`` of ``calls``, in order, as they finish.

    Each job runs a chunk of raters, about four chunks per worker: a worker process
    gets the prior pickled with every job (15 MB with a backbone, tens of ms each way),
    and with a job per rater that made ``n_jobs=2`` slower than ``n_jobs=1`` on 2 cores
    (500 raters of 20 images: 48.5 s against 39.2 s; in chunks 30.4 s).

    Each ``args`` starts with the rater's images (``X``).
    """
    parallel = Parallel(n_jobs=n_jobs)
    workers = parallel._effective_n_jobs()
    size = 1 if workers == 1 else max(1, -(-len(calls) // (4 * workers)))
    chunks = [calls[i:i + size] for i in range(0, len(calls), size)]
    if hasattr(prior, "_apply_reading_params"):
        # a set_params(cache_dir=..., on_error=...) since the prior's last predict
        # reaches its embedder there: the embedding below must follow it too
        prior._apply_reading_params()
    embedder = image_reader(prior)
    in_workers = workers != 1 and not getattr(parallel._backend, "supports_sharedmem", False)
    if not in_workers or not isinstance(embedder, ImageEmbedder):
        jobs = (delayed(_run_chunk)(func, prior, c) for c in chunks)
    else:
        # Each job unpickles a copy of the prior whose embedder holds no embedding (its
        # memo is not pickled): every chunk embedded all its raters' images again,
        # those rated by raters of other chunks too. Here each image is embedded once
        # and its embedding (5 kB with EfficientNet-Lite0) travels with the chunks that
        # need it. All before the first job: joblib takes the later chunks from its
        # callback thread, where embedding would hold up the results and escape Ctrl-C
        # (and the memo holds these embeddings anyway).
        # All of them at once: a memo_size below the test images' count forgot the
        # first chunks' while the later ones were embedded, and the next chunk that
        # shares an image embedded it again.
        with embedder.holding(sum(len(args[0]) for c in chunks for args in c)):
            found = [_chunk_embeddings(embedder, c) for c in chunks]
        jobs = (delayed(_run_chunk)(func, prior, c, e) for c, e in zip(chunks, found))
    if in_workers:
        # Worker processes start with Python's default warning filters: an "ignore" or
        # "error" of the caller's held with n_jobs=1 only. (Set in each job, where a
        # worker runs one at a time; threads share this process's filters already, and
        # setting them there would swap the list under each other.)
        filters = list(warnings.filters)
        jobs = (delayed(_with_filters)(filters, *job) for job in jobs)
    modules = {}
    for part in _in_order(jobs, n_jobs):
        if in_workers:
            part, caught = part
            for text, category, filename, lineno in caught:
                # what the worker showed on its own stderr, which a caller recording
                # warnings (a notebook, pytest.warns) never saw: "fine-tuning collapsed
                # the net" of every draw, with the table looking normal. Under the
                # caller's filters again, with the module and registry warn() would
                # use ("default" shows a repeat once; a filter on a module matches).
                module = _module_of(filename, modules)
                warnings.warn_explicit(
                    text, category, filename, lineno,
                    module=None if module is None else module.__name__,
                    registry=modules.setdefault(("registry", filename), {})
                    if module is None else module.__dict__.setdefault(
                        "__warningregistry__", {}))
        yield from part


def _module_of(filename, found):
    """The module loaded from ``filename`` (None if none is), looked up once each."""
    if filename not in found:
        found[filename] = next((m for m in list(sys.modules.values())
                                if getattr(m, "__dict__", {}).get("__file__") == filename),
                               None)
    return found[filename]


def _with_filters(filters, function, args, kwargs):
    """``function(*args, **kwargs)`` under the warning ``filters`` (a caller's), and the
    warnings they let through, for the caller to issue: ``(result, warnings)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filters[:] = filters
        result = function(*args, **kwargs)
    return result, [_portable(w) for w in caught]


def _portable(w):
    """A caught warning as ``(text, category, filename, lineno)`` for the caller.

    The text, not the warning object: one that does not unpickle (a class whose
    constructor takes keywords, as scikit-learn's InconsistentVersionWarning) lost the
    whole evaluation to "A result has failed to un-serialize". A category that cannot
    be rebuilt from the text, or pickled, travels as a UserWarning naming it.
    """
    text = str(w.message)
    try:
        w.category(text)  # what warn_explicit makes of the text in the caller
        pickle.dumps(w.category)
    except Exception:  # noqa: BLE001 (any constructor's or pickler's failure)
        return f"{w.category.__name__}: {text}", UserWarning, w.filename, w.lineno
    return text, w.category, w.filename, w.lineno


def _run_chunk(func, prior, calls, embeddings=None):
    """``func(prior, *args)`` for each ``args`` of ``calls``, the prior's embedder
    holding ``embeddings`` (key -> embedding, see :func:`_chunk_embeddings`) first."""
    if embeddings is not None:
        reader = image_reader(prior)  # a worker's own copy
        # held whatever its memo_size: forgotten, the worker embedded them again
        reader.memo_size = max(reader.memo_size, len(embeddings))
        reader.remember(embeddings)
    return [func(prior, *args) for args in calls]


def _chunk_embeddings(embedder, calls):
    """The embeddings of the images of a chunk of raters, by key (see ``_each_rater``)."""
    found = {}
    for args in calls:
        found.update(embedder.embeddings(args[0]))
    return found


def _in_order(jobs, n_jobs):
    """The jobs' results in order, each as soon as it and those before it are done.

    An ordered generator moves the progress bar as raters finish while the table keeps
    rater order, on backends that can stream results.
    """
    parallel = Parallel(n_jobs=n_jobs)
    if type(parallel._backend).__name__ == "MultiprocessingBackend" \
            and parallel._effective_n_jobs() != 1:
        # Its workers are forked copies of this process, and torch's CPU thread pool
        # does not survive a fork: the first parallel kernel in a worker hangs.
        raise ValueError("joblib's 'multiprocessing' backend forks the process, and "
                         "torch's CPU threads hang in forked workers; use the default "
                         "'loky' backend (or 'threading', or n_jobs=1).")
    if getattr(parallel._backend, "supports_return_generator", False):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    return parallel(jobs)


def _undefined_draws(table, k, count_prior=True):
    """Text counting the draws at ``k`` support images whose SROCC is undefined, or ''
    (the prior's counted unless ``count_prior`` is False)."""
    sel = table[table["n_support"] == k]
    parts = []
    for name in ("prior", "personalized") if count_prior else ("personalized",):
        n_bad = int((~np.isfinite(sel[f"srocc_{name}"])).sum())
        if n_bad:
            parts.append(f"{n_bad} of {len(sel)} draws ({name})")
    return ", ".join(parts)


def _result(rows, n_support, skipped, what="", model=None,
            protocol="evaluate_personalization"):
    """The rows of a protocol run as a table, summarized per support size.

    Each row is a table row followed by the causes of its two SROCC values being
    undefined (the prior's and the personalized one's, from :func:`_srocc`; None where
    defined). The
    undefined SROCC of a ``model`` whose zero-shot scores are constant by design
    (``_constant_prior``, the per-user ridge) is not warned about.
    """
    table = np.array([row[:len(_FIELDS)] for row in rows], dtype=_FIELDS)
    whys = [row[len(_FIELDS)] for row in rows]
    summary = {}
    count_prior = not getattr(model, "_constant_prior", False)
    for k in n_support:
        undefined = _undefined_draws(table, k, count_prior)
        if undefined:
            # Each call silenced its own warnings; one count here says what the means
            # omit, and whose they are and why: a rater's constant ratings are the data's,
            # constant predictions a model's.
            causes = _undefined_causes(table, whys, k, count_prior)
            warnings.warn(f"{what}undefined SROCC at {k} support images in {undefined}, of "
                          f"{len(causes)} rater(s): "
                          f"{_undefined_raters(causes)}; left out of their raters' means.",
                          UndefinedSROCCWarning, stacklevel=3)
        sel = table[table["n_support"] == k]
        summary[k] = {name: _per_rater_summary(sel, f"srocc_{name}")
                      for name in ("prior", "personalized")}
    return PersonalizationResult(table, summary, skipped, protocol=protocol)


def _undefined_causes(table, whys, k, count_prior=True):
    """Rater -> why its SROCC at ``k`` support images was undefined, draw by draw.

    Predictions are said to be the prior's or the personalized model's; ratings are
    the same query images' for both.
    """
    causes = {}
    for i in np.flatnonzero(table["n_support"] == k):
        for name, why in zip(("prior", "personalized"), whys[i]):
            if why is None or (name == "prior" and not count_prior):
                continue
            if "predictions" in why:
                why += f" of the {name} model"
            causes.setdefault(table["rater"][i], []).append(why)
    return causes


def _per_rater_summary(rows, column):
    if len(rows) == 0:
        return SROCCSummary(float("nan"), float("nan"), 0, 0)
    per_rater = {}  # rater -> its rows, in order of first appearance; one pass
    for i, rater in enumerate(rows["rater"].tolist()):
        per_rater.setdefault(rater, []).append(i)
    means = []
    for idx in per_rater.values():
        values = rows[column][idx]
        ok = np.isfinite(values)
        means.append(values[ok].mean() if ok.any() else np.nan)
    return aggregate_srocc(means)


def _selection_features(prior, X):
    """Embeddings to choose support images from: ``X`` itself, or through the prior."""
    if input_kind(X) == FEATURES:
        return X
    adapter = getattr(prior, "input_", None)
    if not hasattr(adapter, "transform"):
        # "pass embeddings instead" led nowhere for a whole-network prior, which then
        # refused embeddings: it takes images only
        whole = getattr(prior, "_fitted", lambda name: None)("train_backbone")
        raise ValueError(
            "the test raters' X are images, but the prior has no embedding input adapter "
            "(prior.input_ with a transform method, as a MetaAestheticRegressor with a "
            "frozen backbone has) to choose support images by; "
            + ("a prior that trains the whole network (train_backbone=True) takes images "
               "only, so compare_support_strategies cannot run on it: compare strategies "
               "with a head-only prior of the same data." if whole else
               "pass embeddings instead."))
    return adapter.transform(X)


def _query_size(n_query, n_images):
    if isinstance(n_query, numbers.Integral):
        return int(n_query)
    return int(round(n_query * n_images))


def _one_rater_support(prior, X, y, rater, seeds, n_support, n_query, selectors,
                       personalize_params):
    rows = {name: [] for name in ("random", *selectors)}
    X, y, prior_pred = _readable_rows(prior, X, y)
    F = _selection_features(prior, X)
    n_q = _query_size(n_query, len(y))
    _SCALE_CHECKED.on = True  # named once, from all the rater's scores, by the caller
    try:
        for repeat, seed in enumerate(seeds):
            # The query set is drawn first and shared by every strategy: differences
            # between strategies are paired on identical test images.
            perm = np.random.RandomState(seed).permutation(len(y))
            qry, pool = perm[:n_q], perm[n_q:]
            scored_prior, _, prior_why = _srocc(y[qry], prior_pred[qry])
            for k in n_support:
                if n_q < 2 or len(pool) < k:
                    continue
                chosen = {"random": pool[:k]}  # nested over k, as in the default protocol
                for name, sel in selectors.items():
                    chosen[name] = pool[sel.select(take(F, pool), k)]
                for name, sup in chosen.items():
                    # in the rater's own order: fine-tuning depends on the order of its rows,
                    # and the same images in the order a strategy picked them scored apart
                    sup = np.sort(sup)
                    net = prior.personalize(take(X, sup), y[sup], random_state=seed,
                                            **personalize_params)
                    scored, _, why = _srocc(y[qry], net.predict(take(X, qry)))
                    rows[name].append((rater, repeat, k, n_q, scored_prior, scored, seed,
                                       (prior_why, why)))
    finally:
        _SCALE_CHECKED.on = False
    return rows, len(y)


def compare_support_strategies(prior, test_tasks, selectors, n_support=(10, 25),
                               n_query=0.5, n_repeats=10, random_state=None, n_jobs=None,
                               score_range=None, verbose=0):
    """Personalized SROCC with chosen versus random support sets, on the same query images.

    For each test rater and repeat, a random query set of ``n_query`` images is held
    out; the rest is the pool. From the pool, each selector picks ``n_support``
    images (:meth:`SupportSelector.select` on the pool's embeddings) and, for
    reference, ``n_support`` images are drawn at random (``"random"``). The prior is
    personalized on each support set with the same seed and scored by SROCC on the
    *same* query set, so every strategy is compared to random on identical raters,
    query images and fine-tuning seeds: :func:`sklearn_piaa.report.paired_difference`
    of a strategy's result and ``results["random"]`` is the paired gain of choosing.

    Parameters
    ----------
    prior : MetaAestheticRegressor
        A fitted estimator (anything with ``predict`` and ``personalize``).
    test_tasks : TaskSet or dict
        Held-out raters. With images as ``X``, the candidates are embedded through the
        prior's input adapter (``prior.input_``, a frozen backbone's embedder).
    selectors : dict, list of SupportSelector, or SupportSelector
        Name -> selector (a list, or one selector, is named by each selector's
        ``strategy``), fitted on
        training raters over the same embeddings where the strategy needs it. The name
        ``"random"`` is reserved for the protocol's own random support.
    n_support : int or tuple of int, default=(10, 25)
        Support sizes, distinct positive integers.
    n_query : int or float, default=0.5
        Query images per rater: a number, or a fraction of each rater's images. A
        rater is skipped at a support size larger than its pool (images left after
        the query set), or when fewer than 2 query images remain, counted on its
        readable images where the prior leaves unreadable ones out
        (``on_error="skip"``); raters with fewer than 10 are kept, with a
        :class:`PIAAWarning` naming them.
    n_repeats : int, default=10
    random_state : int, RandomState instance or None, default=None
        A fixed value gives the same draws whatever ``n_jobs`` (with selectors whose
        own ``random_state`` is fixed or unused), and the same tables up to rounding
        (see :func:`evaluate_personalization`).
    n_jobs : int, default=None
        Raters in parallel (:class:`joblib.Parallel`).
    score_range : (float, float), default=None
        The test raters' scale, when it differs from the prior's.
    verbose : int or bool, default=0
        Show a progress bar over raters on stderr when positive.

    Returns
    -------
    dict
        ``"random"`` and each selector's name -> :class:`PersonalizationResult`; the
        ``srocc_prior`` column is the same in all of them (same query sets). A size
        that no rater has enough images for is left out of their ``summary``, with
        one :class:`PIAAWarning` for all such sizes.

    Raises
    ------
    ValueError
        When no rater has enough images for a query set and a pool at any of the
        sizes, as in :func:`evaluate_personalization`; when ``verbose`` is neither a
        bool nor an integer of at least 0; or when test raters have scores outside the
        range, as in :func:`evaluate_personalization`.

    See Also
    --------
    evaluate_personalization : the paper's protocol (random support, all other images
        as query).
    SupportSelector : the strategies.

    References
    ----------
    .. [1] H. Zhu et al., "Personalized Image Aesthetics Assessment via Meta-Learning
       With Bilevel Gradient Optimization", IEEE Transactions on Cybernetics, 2022.
    .. [2] O. Sener and S. Savarese, "Active Learning for Convolutional Neural
       Networks: A Core-Set Approach", ICLR 2018.
    """
    prior, test_tasks, n_support = _check_protocol(prior, test_tasks, n_support)
    if isinstance(selectors, SupportSelector):
        selectors = [selectors]
    if not isinstance(selectors, dict):
        selectors = list(selectors)
        names = [getattr(s, "strategy", None) for s in selectors]
        if len(set(names)) != len(names):
            raise ValueError(f"selectors share a strategy name {names}; pass a dict "
                             "name -> selector to tell them apart.")
        selectors = dict(zip(names, selectors))
    if not selectors:
        raise ValueError("selectors is empty: pass at least one SupportSelector.")
    bad = [name for name, s in selectors.items() if not hasattr(s, "select")]
    if bad:
        raise TypeError(f"selectors {bad} have no select(X, n) method; pass "
                        "SupportSelector instances.")
    if "random" in selectors:
        raise ValueError("the name 'random' is the protocol's own random support set; "
                         "name your selector differently (pass a dict).")
    if isinstance(n_query, bool) or not (
            isinstance(n_query, numbers.Integral) and n_query >= 2
            or isinstance(n_query, numbers.Real) and 0 < n_query < 1):
        raise ValueError("n_query must be an integer of at least 2 or a fraction in "
                         f"(0, 1); got {n_query!r}.")
    check_scales(prior, test_tasks, pass_score_range("of theirs") + ".", score_range=score_range)
    n_repeats = _check_repeats(n_repeats)
    check_verbose(verbose)  # before the raters' work, as the estimators check it in fit
    seeds = _draw_seeds(random_state, test_tasks.raters, n_repeats)
    sizes = test_tasks.sizes()
    skipped = {k: [(r, n) for r, n in sizes.items()
                   if _query_size(n_query, n) < 2 or n - _query_size(n_query, n) < k]
               for k in n_support}
    if all(len(raters) == len(test_tasks) for raters in skipped.values()):
        raise ValueError(
            f"no test rater has enough images for any n_support in {list(n_support)} with "
            f"n_query={n_query!r} (it needs at least 2 query images and a pool of "
            f"n_support images besides them); the largest rater has "
            f"{max(sizes.values())} images.")
    n_support = _reachable(n_support, skipped, len(test_tasks),
                           f"{n_query!r} query images and a pool of n_support besides them; "
                           f"the largest rater has {max(sizes.values())}")
    for k in n_support:
        if skipped[k]:
            warnings.warn(f"{len(skipped[k])} rater(s) have too few images for a query "
                          f"set of {n_query} and a pool of {k} and are skipped at "
                          f"n_support={k}: "
                          + listing(f"{r!r} ({n})" for r, n in skipped[k]),
                          SkippedWarning, stacklevel=2)
    extra = {} if score_range is None else {"score_range": score_range}
    calls = [(*test_tasks[r], r, seeds[i], n_support, n_query, selectors, extra)
             for i, r in enumerate(test_tasks.raters)]
    bar = progress(total=len(test_tasks), desc="support", unit="rater",
                   enabled=bool(verbose))
    rows, readable = {name: [] for name in ("random", *selectors)}, {}
    for r, (part, n_readable) in zip(test_tasks.raters,
                                     _each_rater(_one_rater_support, prior, calls, n_jobs)):
        for name in rows:
            rows[name] += part[name]
        readable[r] = n_readable
        bar.update()
    bar.close()
    n_support = _skip_unreadable(
        skipped, sizes, readable, n_support,
        lambda n, k: _query_size(n_query, n) < 2 or n - _query_size(n_query, n) < k,
        lambda k: f"too few readable images for a query set of {n_query} and a pool of {k}",
        f"at least 2 query images of {n_query!r} and a pool of n_support besides them")
    _warn_few_query(rows["random"], n_support, stacklevel=3)  # query sets all strategies share
    return {name: _result(found, n_support, dict(skipped), what=f"{name} support: ",
                          model=prior, protocol="compare_support_strategies")
            for name, found in rows.items()}
