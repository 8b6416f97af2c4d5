"""The ``sklearn-piaa`` command line's parser: its commands, options and option types.

Building it imports nothing heavy (no torch, scikit-learn or numpy): ``--help``, and a
mistyped option, answer at once. :mod:`sklearn_piaa.cli` runs the commands.
"""

import argparse
import functools
import re

from ._cli_common import BENCHMARK_DEFAULTS, READERS, TABLE_DEFAULTS
from ._names import ALGORITHM_NAMES, BACKBONE_NAMES, METHOD_LABELS, TABLE1_METHODS

#: ``table1 --algorithms`` choices: every row the report knows, then any other algorithm.
TABLE1_CHOICES = list(METHOD_LABELS) + [a for a in ALGORITHM_NAMES if a not in METHOD_LABELS]


def _add_data_args(p, what):
    p.add_argument("data", metavar="DATA",
                   help=f"{what}: a ratings CSV (header naming rater, image and score "
                        "columns) or, with --format, a data set's folder")
    p.add_argument("--format", choices=list(READERS), default="table",
                   help="how DATA is laid out: 'table' (a CSV, default) or a public data "
                        "set's folder as distributed (its official test raters are used "
                        "where the data set defines them)")
    _add_test_raters(p, "DATA")
    _add_table_args(p)


def _add_test_raters(p, data):
    p.add_argument("--test-raters", metavar="FILE",
                   help=f"hold out the raters listed in FILE (a CSV with a header row: "
                        f"its only column, or one named rater, worker, userId, ...) as "
                        f"{data}'s test raters, in place of a data set's own")


def _add_table_args(p, formats=True):
    p.add_argument("--image-root", default=TABLE_DEFAULTS["image_root"], type=_image_root,
                   help="folder the CSV's image names are relative to (default: the CSV's "
                        "folder)" + ("; with --format, the data set's image folder "
                                     "(default: the one it is distributed with, e.g. "
                                     "DATA/40K for flickr-aes)" if formats else ""))
    p.add_argument("--rater-col", default=TABLE_DEFAULTS["rater_col"], help="rater id column")
    p.add_argument("--image-col", default=TABLE_DEFAULTS["image_col"], help="image file column")
    p.add_argument("--score-col", default=TABLE_DEFAULTS["score_col"], help="score column")


def _add_on_error(p, skip):
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help=f"unreadable or missing image files: stop, or {skip}, with a "
                        "warning naming them")


def _add_cache_args(p):
    """``--cache-dir`` and ``--no-cache`` of the commands that load a saved model."""
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", type=_folder,
                       help="on-disk cache of image embeddings (default: the model's own "
                            "cache_dir, the folder it was saved with, if any)")
    cache.add_argument("--no-cache", action="store_true",
                       help="embed images without an on-disk cache, whatever the model's "
                            "cache_dir")


def _add_finetune_args(p):
    """``--epochs``, ``--lr`` and ``--batch-size``: the commands that personalize a prior."""
    p.add_argument("--epochs", type=_count, help="fine-tuning epochs (default: the prior's)")
    p.add_argument("--lr", type=_rate, help="fine-tuning learning rate (default: the "
                                            "prior's)")
    p.add_argument("--batch-size", type=_count, metavar="N",
                   help="images per fine-tuning step (default: the prior's; fewer need "
                        "less memory with a whole-network prior)")


def _add_common_args(p, device=True, seed=True, seed_help=None):
    if device:  # the commands that load a saved model
        p.add_argument("--device", default=None,
                       help="torch device, e.g. cpu or cuda (default: the one the model "
                            "was saved on, or the CPU where that is absent)")
    if seed_help:
        p.add_argument("--random-state", type=_seed, default=None, help=seed_help)
    elif seed:
        p.add_argument("--random-state", type=_seed, default=0, help="seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_benchmark_args(p):
    d = BENCHMARK_DEFAULTS
    p.add_argument("--n-images", type=_count, default=d["n_images"],
                   help="built-in benchmark: images generated")
    p.add_argument("--n-raters", type=_count, default=d["n_raters"], help="raters simulated")
    p.add_argument("--images-per-rater", type=_count, default=d["images_per_rater"],
                   help="ratings per rater")
    # the benchmark's own check named image_size, after the options were read
    p.add_argument("--image-size", type=functools.partial(_count, least=16,
                                                          what="an integer of at least 16"),
                   default=d["image_size"],
                   help="built-in benchmark: image side in pixels")


def _count(text, least=1, what="a positive integer"):
    """A positive integer option (images per step).

    Refused here, by the option's name, before the data are read: the estimator's own
    error named its parameter, not the option, and came after the images were embedded.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _whole(text):
    """An integer option that may be 0 (iterations, inner steps)."""
    return _count(text, 0, "an integer, 0 or more")


# checked as the options are read, before a data set is: "The 'backbone' parameter of
# MetaAestheticRegressor must be a str among ..." came after it, in the estimator's words
_BACKBONE_CHOICES = {"choices": BACKBONE_NAMES, "metavar": "NAME"}
_BACKBONE_HELP = ("efficientnet_lite0 (weights shipped), resnet18, alexnet, inception_v3 "
                  "(need --backbone-weights) or tiny_cnn")
_JOBS_HELP = "raters in parallel (joblib's count: -1 every core, -2 all but one, ...)"


def _jobs(text):
    """``--n-jobs``: joblib's count (-1: every core; 0 means nothing to it)."""
    what = "a number of jobs: a positive integer, or -1 for every core (-2 all but one, ...)"
    value = _count(text, -(2**31), what)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected {what}, got 0")
    return value


def _seed(text):
    """``--random-state``: numpy seeds only integers from 0 to 2**32 - 1."""
    value = _count(text, 0, "a seed: an integer from 0 to 4294967295")
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed: an integer from 0 to 4294967295, "
                                         f"got {value}")
    return value


def _folder(text, off="to turn the cache off, give --no-cache"):
    """A folder option: an empty one would be the working directory, unsaid."""
    if not text:
        raise argparse.ArgumentTypeError(f"expected a folder, got an empty value; {off}")
    return text


def _new_folder(text):
    """``meta-train --cache-dir``, which has no ``--no-cache``: no cache is its default."""
    return _folder(text, off="to turn the cache off, leave the option out")


def _checkpoint_folder(text):
    return _folder(text, off="for no checkpoints, leave the option out")


def _image_root(text):
    return _folder(text, off="for the CSV's folder (with --format, the data set's image "
                             "folder), leave the option out")


def _number(text):
    """A number option's value; argparse names the option when it is none."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _rate(text):
    """A learning rate or step size option: a finite number, 0 or more.

    Refused here, by the option's name: torch's own error ("Invalid learning rate:
    -1.0") named no option, and came only after the data were read.
    """
    value = _number(text)
    if not 0 <= value < float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a learning rate: a finite number, 0 or "
                                         f"more; got {text!r}")
    return value


def _fraction(text):
    """A share option (``--test-fraction``): a number between 0 and 1, both excluded."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (both "
                                         f"excluded), e.g. 0.2; got {text!r}")
    return value


def _score_range(text):
    """``--score-range LOW,HIGH`` as a pair of floats; argparse names the option on error."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        values = tuple(float(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH: two numbers separated by a comma, e.g. 1,5; got {text!r}"
        ) from None
    from ._score_range import check_score_range  # numpy: only where the option is given

    try:
        # here, where the message can spell the option: the estimator's says score_range=
        # and came only after the data were read
        check_score_range(values)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH: two finite numbers, LOW below HIGH, within float32's "
            f"range (about +-3.4e38, HIGH - LOW too); got {text!r}") from None
    return values


def negative_ranges(argv):
    """``--score-range -10,0`` as ``--score-range=-10,0``.

    argparse takes a value that starts with "-" for an option, so a scale with a
    negative low end would fail with "expected one argument".
    """
    out = list(argv)
    for i in range(len(out) - 1):
        # argparse's abbreviations too ("--score-r"; one that is not unique it refuses)
        if isinstance(out[i], str) and len(out[i]) > 2 and "--score-range".startswith(out[i]) \
                and re.fullmatch(r"-[\d.eE+-]*,.*", out[i + 1]):
            out[i:i + 2] = [f"{out[i]}={out[i + 1]}", None]
    return [a for a in out if a is not None]


class _VersionAction(argparse.Action):
    """``--version``: imports torch, whose version it names, only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import torch

        from . import __version__

        print(f"{parser.prog} {__version__} (torch {torch.__version__})")  # as argparse's
        parser.exit()


class _DistinctSizes(argparse.Action):
    """``--n-support 10 10`` refused as the parser refuses other bad values: before the
    data and the model are read (the evaluation refused it afterwards, naming the
    Python parameter)."""

    def __call__(self, parser, namespace, values, option_string=None):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            parser.error(f"argument {'/'.join(self.option_strings)}: lists "
                         f"{', '.join(map(str, twice))} more than once; give each support "
                         "size once.")
        setattr(namespace, self.dest, values)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where there is none or the help already names it."""

    def _get_help_string(self, action):
        if (action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or "default" in action.help):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sklearn-piaa", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Personalized image aesthetics assessment (BLG-PIAA meta-learning).\n\n"
                    "  sklearn-piaa demo                     the main job, on built-in data\n"
                    "  sklearn-piaa meta-train DATA -o prior.pt\n"
                    "  sklearn-piaa personalize prior.pt my_ratings.csv -o me.pt\n"
                    "  sklearn-piaa predict me.pt photos/ -o scores.csv\n"
                    "  sklearn-piaa evaluate prior.pt DATA\n\n"
                    "DATA is a CSV with rater, image and score columns (image paths relative "
                    "to the CSV),\nor a public data set's folder with --format. "
                    "'sklearn-piaa COMMAND --help' explains each option.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = _HelpFormatter

    mt = sub.add_parser("meta-train", formatter_class=defaults,
                        help="meta-train a prior on a data set and save it")
    _add_data_args(mt, "the raters to meta-train on")
    mt.add_argument("-o", "--output", required=True, help="model file to write (.pt)")
    mt.add_argument("--min-images", type=_count, metavar="N",
                    help="leave out training raters with fewer than N rated images, naming "
                         "them (default: a rater with one image stops the command); with "
                         "--on-error skip, readable images only")
    mt.add_argument("--drop-constant-raters", action="store_true",
                    help="leave out training raters who gave every image the same score, "
                         "naming them (they order no pair of images; default: kept, with "
                         "a warning)")
    mt.add_argument("--backbone", default="efficientnet_lite0", **_BACKBONE_CHOICES,
                    help=_BACKBONE_HELP)
    mt.add_argument("--backbone-weights", help="local weights file of the backbone")
    mt.add_argument("--train-backbone", action="store_true",
                    help="train the whole network (the paper's setting; use a GPU) "
                         "instead of a head over cached embeddings")
    mt.add_argument("--algorithm", default="blg",
                    choices=list(ALGORITHM_NAMES),
                    help="meta-learning algorithm")
    mt.add_argument("--n-iterations", type=_whole, default=1000, help="outer iterations")
    mt.add_argument("--tasks-per-batch", type=_count, default=4, help="raters per iteration (k)")
    mt.add_argument("--hidden-sizes", type=_count, nargs="+", default=[1024, 512], metavar="N",
                    help="widths of the head's hidden layers (the paper's 1024 512)")
    mt.add_argument("--support-size", type=_count, default=80,
                    help="support images per task; a rater with fewer than support + query "
                         "images gives 80%% of them as support, the rest as query")
    mt.add_argument("--query-size", type=_count, default=20, help="query images per task")
    mt.add_argument("--inner-steps", type=_whole, default=5, help="inner Adam steps (S)")
    mt.add_argument("--inner-lr", type=_rate, default=1e-3, help="inner learning rate")
    mt.add_argument("--outer-lr", type=_rate, default=1e-2, help="outer step size (beta)")
    mt.add_argument("--inner-backbone-lr", type=_rate, default=1e-4,
                    help="inner learning rate of the backbone (with --train-backbone)")
    mt.add_argument("--mixed-precision", action="store_true",
                    help="bfloat16 forward passes: embedding and prediction, and with "
                         "--train-backbone every training step (for GPUs and CPUs with "
                         "bfloat16 instructions; far slower on AVX2-only CPUs, which warn)")
    mt.add_argument("--finetune-epochs", type=_count, default=20, metavar="N",
                    help="fine-tuning epochs when the prior is personalized")
    mt.add_argument("--finetune-lr", type=_rate,
                    help="fine-tuning learning rate when the prior is personalized "
                         "(default: 1e-5 with --train-backbone; else 3e-5 for steps of up "
                         "to 10 images, times sqrt(N / 10) for steps of N images)")
    mt.add_argument("--finetune-batch-size", type=_count, metavar="N",
                    help="images per fine-tuning step when the prior is personalized "
                         "(default: all of a rater's images with --train-backbone, else "
                         "a quarter of them, at least 10)")
    mt.add_argument("--score-range", type=_score_range, metavar="LOW,HIGH",
                    help="rating scale (default: the lowest and highest rating seen)")
    mt.add_argument("--cache-dir", type=_new_folder,
                    help="on-disk cache of image embeddings (resumable; head-only training)")
    mt.add_argument("--checkpoint-dir", type=_checkpoint_folder,
                    help="write checkpoints here (one file per run); rerunning the same "
                         "command resumes")
    mt.add_argument("--checkpoint-every", type=_count, default=100,
                    help="iterations between checkpoints")
    _add_on_error(mt, "meta-train without them")
    _add_common_args(mt, device=False)
    mt.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    pe = sub.add_parser("personalize", formatter_class=defaults,
                        help="fit a saved prior to one rater's ratings and save the "
                             "personalized model")
    pe.add_argument("prior", help="prior file written by meta-train (or a baseline's, "
                                  "written by save_model)")
    pe.add_argument("ratings", help="CSV of the rater's ratings: image and score columns "
                                    "(a rater column is optional; see --rater)")
    pe.add_argument("-o", "--output", required=True, help="model file to write (.pt)")
    pe.add_argument("--rater", help="rater id, when the CSV holds several raters")
    _add_table_args(pe, formats=False)
    _add_finetune_args(pe)
    pe.add_argument("--score-range", type=_score_range, metavar="LOW,HIGH",
                    help="the rater's rating scale, when it differs from the prior's")
    _add_on_error(pe, "fine-tune without them")
    _add_cache_args(pe)
    # as prior.personalize(X, y) in Python: the same net from the same files
    _add_common_args(pe, seed_help="seed (default: the prior's own, as it was trained with; "
                                   "unseeded where that is none)")

    pr = sub.add_parser("predict", formatter_class=defaults,
                        help="score images with a saved prior or personalized model")
    pr.add_argument("model", help="model file (prior or personalized)")
    pr.add_argument("images", nargs="+",
                    help="image files or folders (searched recursively, linked folders "
                         "included, for the photo formats this Pillow reads: .jpg, .png, "
                         ".webp, .tif, .avif, ...; a warning names the other files; "
                         "hidden files and folders, such as macOS's ._IMG.jpg, are passed "
                         "over)")
    pr.add_argument("-o", "--output", default="-",
                    help="CSV to write (image,predicted_score); - for standard output")
    pr.add_argument("--on-error", choices=["raise", "skip"], default="skip",
                    help="unreadable image files: stop, or score them NaN with a warning")
    _add_cache_args(pr)
    _add_common_args(pr, seed=False)  # prediction draws nothing at random

    ev = sub.add_parser("evaluate", formatter_class=defaults,
                        help="personalize each test rater on random support sets and "
                             "report SROCC (the paper's protocol)")
    ev.add_argument("prior", help="prior file written by meta-train (or a baseline's, "
                                  "written by save_model)")
    _add_data_args(ev, "the raters to evaluate on (a data set's test raters where it "
                       "defines them, else all of them; give raters the prior was not "
                       "meta-trained on)")
    ev.add_argument("--n-support", type=_count, nargs="+", default=[10, 100],
                    action=_DistinctSizes,
                    help="support set sizes")
    ev.add_argument("--n-repeats", type=_count, default=10, help="random draws per rater")
    ev.add_argument("--n-jobs", type=_jobs, default=None, help=_JOBS_HELP)
    _add_finetune_args(ev)
    ev.add_argument("--score-range", type=_score_range, metavar="LOW,HIGH",
                    help="the test raters' scale, when it differs from the prior's")
    ev.add_argument("-o", "--output", help="CSV of the per-rater, per-draw table")
    _add_on_error(ev, "evaluate each rater on the others")
    _add_cache_args(ev)
    _add_common_args(ev)

    demo = sub.add_parser("demo", formatter_class=defaults,
                          help="meta-train on the built-in benchmark, personalize held-out "
                               "raters at 10 and 100 images, print SROCC")
    _add_benchmark_args(demo)
    demo.add_argument("--n-test-raters", type=_count, default=12,
                      help="raters held out of meta-training and personalized")
    demo.add_argument("--n-support", type=_count, nargs="+", default=[10, 100],
                      action=_DistinctSizes,
                      help="support set sizes")
    demo.add_argument("--n-repeats", type=_count, default=3, help="random draws per rater")
    demo.add_argument("--backbone", default="efficientnet_lite0", **_BACKBONE_CHOICES,
                      help=_BACKBONE_HELP)
    demo.add_argument("--backbone-weights", help="local weights file of the backbone")
    demo.add_argument("--n-iterations", type=_whole, default=300, help="outer iterations")
    demo.add_argument("--outer-lr", type=_rate, default=0.1, help="outer step size")
    _add_common_args(demo, device=False)

    table = sub.add_parser("table1", formatter_class=defaults,
                           help="the paper's Table I: every method on the same held-out "
                                "raters and support draws")
    source = table.add_mutually_exclusive_group()
    source.add_argument("--ratings", help="a rater/image/score CSV (default: the built-in "
                                          "benchmark)")
    source.add_argument("--photos", help="a folder of real photos, scored by simulated "
                                         "raters from measured attributes (the real-photo "
                                         "benchmark)")
    _add_table_args(table)
    _add_test_raters(table, "--ratings")
    _add_benchmark_args(table)
    table.add_argument("--format", choices=list(READERS), default="table",
                       help="how --ratings is laid out: 'table' (a CSV, default) or a public "
                            "data set's folder as distributed; a data set that defines its "
                            "test raters (FLICKR-AES: the 37 workers of Ren et al.) is split "
                            "by them, as the literature's tables are")
    table.add_argument("--test-fraction", type=_fraction, default=None,
                       help="share of raters held out, drawn at random (default 0.2); not "
                            "with a data set that defines its test raters")
    table.add_argument("--algorithms", nargs="+", choices=TABLE1_CHOICES, metavar="METHOD",
                       help="methods (rows), any of: " + ", ".join(TABLE1_CHOICES)
                            + " (default: " + ", ".join(TABLE1_METHODS) + "; plus pam and "
                            "pam_attributes with --attributes, pa_iaa with --personality)")
    table.add_argument("--attributes", action="store_true",
                       help="measure each image's aesthetic attributes (brightness, "
                            "contrast, colourfulness, sharpness, rule of thirds, ...; see "
                            "sklearn_piaa.datasets.measure_attributes) and add the PAM rows "
                            "that use them: pam (attributes + content) and pam_attributes")
    table.add_argument("--personality", nargs="?", const=True, metavar="FILE",
                       help="add the PA_IAA row, which needs each rater's Big-Five traits. "
                            "Built-in benchmark: no FILE; its raters are generated with "
                            "latent traits that drive part of their taste (different "
                            "ratings than without the flag). With --ratings: a CSV with the "
                            "rater column (--rater-col; with --format, the data set's own, "
                            "e.g. userId for para) and five trait columns in [-1, 1] (or "
                            "PARA's personality-* columns among others), one row per rater")
    table.add_argument("--trait-cols", nargs=5, metavar="COL",
                       help="with --personality FILE: the five trait columns, in the order "
                            "the model takes them (default: the five columns besides the "
                            "rater's, or the five personality-* ones)")
    table.add_argument("--n-support", type=_count, nargs="+", default=[10, 100],
                       action=_DistinctSizes,
                       help="support set sizes (columns)")
    table.add_argument("--n-repeats", type=_count, default=3, help="random draws per rater")
    table.add_argument("--n-iterations", type=_whole, default=300, help="outer iterations")
    table.add_argument("--outer-lr", type=_rate, default=0.1,
                       help="outer step size of BLG, merged and Reptile")
    table.add_argument("--maml-outer-lr", type=_rate, default=1e-3,
                       help="learning rate of MAML's outer Adam (0.1 saturates its head)")
    table.add_argument("--backbone", default="efficientnet_lite0", **_BACKBONE_CHOICES,
                       help=_BACKBONE_HELP)
    table.add_argument("--backbone-weights", help="local weights file of the backbone")
    table.add_argument("--score-range", type=_score_range, metavar="LOW,HIGH",
                       help="the test raters' scale (e.g. 1,5), where their scores reach "
                            "beyond the training raters' range")
    table.add_argument("--n-jobs", type=_jobs, default=None, help=_JOBS_HELP)
    _add_common_args(table, device=False)
    return parser, sub
