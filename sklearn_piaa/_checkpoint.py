"""Meta-training checkpoints: everything needed to resume a run exactly where it stopped."""

import glob
import hashlib
import os
import zipfile

import numpy as np
import torch

from ._io import (
    STALE_WRITE_SECONDS,
    atomic_write,
    check_writable_dir,
    damaged_part,
    folder_path,
    remove_unfinished_writes,
)
from ._warnings import warn_caller

__all__ = ["Checkpointer", "checkpoint_name", "fingerprint"]

FORMAT = "sklearn-piaa-checkpoint"
FORMAT_VERSION = 1
#: The version of the way a run is keyed (:func:`fingerprint` of what it hashes),
#: written in each checkpoint and raised with each change to the key (a new estimator
#: parameter too, unless fit's key ignores it: get_params() is hashed;
#: tests/test_checkpoint.py pins one run's key):
#: a run started by an earlier version cannot find its checkpoint, and the warning must
#: say why. The version itself is not hashed. Version 3 keys each row's rater and image
#: paths relative to their common folder; files without a version were written before
#: it was recorded (keyed by version 3, or by an earlier one: the one-file-per-folder
#: ``checkpoint.pt``, and runs keyed before the rater of each row or relative paths
#: were).
RUN_KEY_VERSION = 3
#: What a checkpoint of another run-key version means, for fit's warning and load_model.
KEYED_OTHERWISE = ("if one is this run's, written by another sklearn-piaa that keyed runs "
                   "otherwise, only that version resumes it (or delete its file);")


def checkpoint_name(run_id, n_iterations=None):
    """The file name of run ``run_id``'s checkpoint: one file per run in a folder.

    Runs of other data or settings (the folds and candidates of a grid search, a run
    with one setting changed) keep their own checkpoints side by side.

    Parameters
    ----------
    run_id : str
        The run's :func:`fingerprint`.
    n_iterations : int, default=None
        Given for a run shorter than one of the same data and settings whose
        checkpoint is already further on (see :meth:`Checkpointer.load`).

    Returns
    -------
    str
        ``checkpoint-<first 16 hex digits of run_id>.pt``, or
        ``checkpoint-<those digits>-n<n_iterations>.pt``.
    """
    if n_iterations is None:
        return f"checkpoint-{run_id[:16]}.pt"
    return f"checkpoint-{run_id[:16]}-n{int(n_iterations)}.pt"


def fingerprint(config, arrays):
    """A short hash of a run's settings and data, to refuse resuming a different run.

    Parameters
    ----------
    config : dict
        Settings that change the result (their ``repr`` is hashed).
    arrays : iterable of ndarray or Tensor
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(sorted(config.items())).encode())
    for a in arrays:
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


#: The entry of a saved state that holds :func:`content_digest` of the rest.
DIGEST_KEY = "content_sha256"


def content_digest(state):
    """SHA-256 of everything ``state`` holds, as ``torch.load`` gives it back.

    The archive's checksums cover the bytes of each part, not its directory: a flipped
    bit there can make ``torch.load`` read a weight as zeros from intact bytes. A digest
    of what was saved, compared with what was loaded, catches that and any other way
    the two can differ.

    Parameters
    ----------
    state : dict
        Of dicts, lists, tuples, tensors, strings, numbers, booleans and None.

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    stack = [state]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
            flat = t.resolve_conj().resolve_neg().contiguous().reshape(-1)
            if flat.stride(0) != 1:
                # an expanded one-element or empty tensor is "contiguous" with a stride
                # of 0, which no byte view takes: a dense copy of it
                flat = torch.empty(flat.numel(), dtype=flat.dtype).copy_(flat)
            h.update(flat.view(torch.uint8).numpy())
        elif isinstance(value, dict):
            h.update(f"D{len(value)};".encode())
            for k, v in reversed(value.items()):
                stack += [v, k]
        elif isinstance(value, (list, tuple)):
            h.update(f"{type(value).__name__[0]}{len(value)};".encode())
            stack += reversed(value)
        elif value is None or isinstance(value, (str, bytes, bool, int, float, complex,
                                                 torch.dtype, torch.device)):
            h.update(f"{type(value).__name__}:{value!r};".encode())
        else:  # a set's repr, say, changes order from process to process
            raise TypeError(f"content_digest cannot digest a {type(value).__name__}.")
    return h.hexdigest()


def with_digest(state):
    """``state`` with :data:`DIGEST_KEY` added.

    Parameters
    ----------
    state : dict
        What is about to be saved; changed in place.

    Returns
    -------
    dict
        ``state`` itself.
    """
    state.pop(DIGEST_KEY, None)
    state[DIGEST_KEY] = content_digest(state)
    return state


def check_digest(state, path):
    """Remove :data:`DIGEST_KEY` from a loaded ``state`` and check the rest against it.

    Files written before the digest have none, and pass.

    Parameters
    ----------
    state : dict
        As ``torch.load`` gave it; the digest entry is removed.
    path : str
        The file, for the message.

    Raises
    ------
    ValueError
        When what was loaded differs from what was written.
    """
    saved = state.pop(DIGEST_KEY, None) if isinstance(state, dict) else None
    if saved is not None and content_digest(state) != saved:
        raise ValueError(f"{path} is damaged (a bad disk, an interrupted transfer?) or was "
                         "changed and saved again by another program: its contents differ "
                         "from what sklearn-piaa wrote.")


def _reason(exc, what="a checkpoint"):
    # torch's unpickling errors run to a page of advice that does not apply here, and
    # its advice to load with weights_only=False would run the file's code.
    text = str(exc).strip()
    if "weights_only" in text or "Weights only" in text:
        return f"it holds Python objects that {what} never does"
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0][:200]
    # a KeyError's text is only the key (a bare number from a damaged archive)
    return first if any(c.isalpha() for c in first) else f"{type(exc).__name__}: {first}"


#: What a file that is not a torch archive is, by :func:`_not_an_archive`'s key.
_NOT_AN_ARCHIVE = {
    "pickle": "it is a pickle (pickle.dump or joblib.dump), not a torch archive",
    "truncated": ("it is the start of a torch archive whose end is missing: a truncated "
                  "file (an interrupted copy or download?)"),
    "damaged": ("its end record (where the archive lists its parts) is damaged: a "
                "damaged copy (a bad disk, an interrupted transfer?)"),
    "empty": "it is not a torch archive (it is empty)",
    "other": "it is not a torch archive",
}


def _not_an_archive(path):
    """Which of ``_NOT_AN_ARCHIVE`` ``path`` is, or None when it is a torch archive."""
    try:
        if zipfile.is_zipfile(path):
            return None
    except zipfile.BadZipFile:  # a damaged end record ("span multiple disks")
        return "damaged"
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == b"\x80":  # pickle's protocol marker (joblib.dump writes pickles too)
        return "pickle"
    if head == b"PK":  # a zip whose directory, at its end, is missing
        return "truncated"
    return "other" if head else "empty"


def _numpy_rng_state(rng):
    name, keys, pos, has_gauss, cached = rng.get_state()
    # Stored as a tensor and plain numbers: weights_only loading accepts no ndarrays.
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_rng_state(rng, s):
    rng.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                   s["cached"]))


class Checkpointer:
    """Writes and reads the checkpoint of one meta-training run in ``directory``.

    Each run has its own file (:func:`checkpoint_name`), so a folder can hold the
    checkpoints of many runs; a run that finds none of its own starts afresh, with a
    warning when the folder holds unfinished runs of other data or settings (the user
    may have meant to resume one of them).

    The file holds the prior's weights and statistics, the algorithm's own state (outer
    Adam moments), the iteration reached, the loss history, the time spent and the
    numpy and torch random states, so that a resumed run continues the same random
    stream and ends with the same prior as an uninterrupted one. Writes are atomic
    (temporary file, then rename): a kill during a write leaves the previous
    checkpoint intact.

    Parameters
    ----------
    directory : str or path-like
    every : int
        Iterations between checkpoints (the last iteration is always saved).
    run_id : str
        :func:`fingerprint` of the run.
    n_iterations : int, default=None
        The run's length. Runs of the same data and settings and other lengths (the
        candidates of a grid search over ``n_iterations`` sharing the folder) share
        one file, which holds the furthest point reached; a run that finds it past its
        own end leaves it as it is, keeps its own file (:func:`checkpoint_name`) and
        trains from its own start. ``None``: the file is resumed from whatever
        iteration it holds.
    """

    def __init__(self, directory, every, run_id, n_iterations=None):
        self.directory = folder_path(directory)
        self.every = int(every)
        self.run_id = run_id
        self.n_iterations = n_iterations
        check_writable_dir(self.directory, what="checkpoint_dir")
        self.path = os.path.join(self.directory, checkpoint_name(run_id))
        self._write_failed = False  # warned of since the last write that succeeded

    def due(self, iteration, n_iterations):
        """Whether to write after ``iteration`` (1-based count of finished iterations)."""
        return iteration % self.every == 0 or iteration == n_iterations

    def save(self, iteration, n_iterations, prior, algo, rng, history, elapsed, device):
        """Write the state after ``iteration`` of ``n_iterations`` finished iterations."""
        if self.n_iterations is not None and \
                os.path.basename(self.path) == checkpoint_name(self.run_id):
            # Runs of the same data and settings but other lengths (a grid search over
            # n_iterations, in other processes) share the file: they follow one path,
            # and it holds the furthest point reached. A file further on is kept: along
            # this run's way it already holds more than this write would; past this
            # run's end, this run keeps its own file from now on (as load does).
            held = self._held()
            if held is not None and held > iteration:
                if held <= self.n_iterations:
                    return
                self.path = self._own_path()
        state = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "run_id": self.run_id,
            "run_key_version": RUN_KEY_VERSION,
            "iteration": int(iteration), "n_iterations": int(n_iterations),
            "prior": {k: v.detach().cpu() for k, v in prior.state_dict().items()},
            "algorithm": algo.state_dict(),
            "numpy_rng": _numpy_rng_state(rng),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(device) if device.type == "cuda" else None),
            "history": torch.from_numpy(np.asarray(history[:iteration], dtype=np.float64)),
            "elapsed": float(elapsed),
        }
        try:
            atomic_write(self.path, lambda fh: torch.save(with_digest(state), fh))
        except OSError as exc:
            # A full disk or a folder removed mid-run aborted the fit and lost the prior
            # in memory, which a checkpoint exists to keep: said once, and training goes
            # on (a later write may succeed where the disk has room again).
            if not self._write_failed:
                self._write_failed = True
                warn_caller(
                    f"checkpoint_dir: the checkpoint after iteration {iteration} could not "
                    f"be written ({str(exc).rstrip('.')}); meta-training goes on and the "
                    "prior in memory is kept, but until a write succeeds an interrupted "
                    "run resumes from an earlier checkpoint, or from the start. Free disk "
                    "space, or give the folder back.")
            return
        self._write_failed = False

    def _own_path(self):
        """This run's file when the shared one is past its end (see ``n_iterations``)."""
        return os.path.join(self.directory, checkpoint_name(self.run_id, self.n_iterations))

    def _held(self):
        """The iteration this run's file holds, or None (none, another run's, unreadable:
        this run's write replaces it)."""
        try:  # mapped, not read: only the count is looked at
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            if state.get("run_id") == self.run_id:
                return int(state["iteration"])
        except Exception:
            pass
        return None

    def load(self):
        """The run's saved state, or ``None`` when the directory holds none of it.

        Temporary files of this run's writes that a killed process left behind (up to
        a checkpoint's size each) are removed once an hour old: a younger one may be
        the write in progress of a run sharing the file (another length, in a grid
        search), which removing it would crash.
        """
        state = None
        if os.path.isfile(self.path):
            state = self._read(self.path)
            if self.n_iterations is not None and state["iteration"] > self.n_iterations:
                # A longer run of the same data and settings got there first (a grid
                # search over n_iterations sharing the folder): its file is left as it
                # is, and this run keeps its own.
                self.path = self._own_path()
                state = self._read(self.path) if os.path.isfile(self.path) else None
        if state is None:
            self._warn_unfinished()
        remove_unfinished_writes(self.directory, os.path.basename(self.path) + ".",
                                 older_than=STALE_WRITE_SECONDS)
        return state

    def _read(self, path, other_runs=False):
        # torch.load checks no checksum: a flipped bit in a weight would resume as is
        damage = damaged_part(path) if _not_an_archive(path) is None else None
        if damage is not None:
            if other_runs:
                return None
            raise ValueError(f"checkpoint {path} is damaged: {damage}; delete it to start "
                             "over.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            if other_runs:
                return None
            why = _NOT_AN_ARCHIVE.get(_not_an_archive(path)) or _reason(exc)
            raise ValueError(f"checkpoint {path} cannot be read ({why}); "
                             "delete it to start over.") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            if other_runs:
                return None
            raise ValueError(f"{path} is not a sklearn-piaa checkpoint.")
        if state.get("run_id") != self.run_id:
            if other_runs:
                return None
            raise ValueError(
                f"checkpoint {path} belongs to another run (different data or settings); "
                "delete the file to start over.")
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"checkpoint {path} has format version {state.get('format_version')}; "
                f"this sklearn-piaa reads version {FORMAT_VERSION}. Finish the run with the "
                "version that wrote it, or delete the checkpoint to start over.")
        try:
            check_digest(state, path)
        except ValueError as exc:
            if other_runs:
                return None
            raise ValueError(f"checkpoint {exc} Delete it to start over.") from None
        return state

    def _warn_unfinished(self):
        unfinished, earlier = [], []
        own = checkpoint_name(self.run_id)  # a longer run of this one's (see load)
        for path in sorted(glob.glob(os.path.join(glob.escape(self.directory),
                                                  "checkpoint*.pt"))):
            if os.path.basename(path) == own:
                continue
            try:  # mapped, not read: only the counts are looked at
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                version = state.get("run_key_version")
                done = state["iteration"] >= state["n_iterations"]
            except Exception:  # unreadable, or written before n_iterations was saved
                version, done = RUN_KEY_VERSION, False
            if version != RUN_KEY_VERSION:  # this run's, perhaps, keyed otherwise
                earlier.append(os.path.basename(path))
            elif not done:
                unfinished.append(os.path.basename(path))
        start = (f"this run starts at iteration 0 and checkpoints to "
                 f"{os.path.basename(self.path)}")
        if unfinished:
            warn_caller(
                f"checkpoint_dir {self.directory} holds {len(unfinished)} unfinished "
                f"run(s) of other data or settings ({_some(unfinished)}; stopped, or still "
                f"running in another process); {start}. To resume one of them, fit with "
                "the data and settings it was started with.")
        if earlier:
            # Without a version: written before versions were recorded, keyed as now or
            # (an earlier sklearn-piaa) otherwise. This run has none of its own: one of
            # them can be this run's only under another key.
            warn_caller(
                f"checkpoint_dir {self.directory} holds {len(earlier)} checkpoint(s) of "
                f"another run-key version or of none ({_some(earlier)}): {KEYED_OTHERWISE} "
                f"{start}. Another run's is resumed by fitting with its data and settings.")

    @staticmethod
    def restore(state, prior, algo, rng, device):
        """Put a loaded state back; returns ``(iteration, history, elapsed)``."""
        prior.load_state_dict({k: v.to(device) for k, v in state["prior"].items()})
        algo.load_state_dict(state["algorithm"], prior)
        _set_numpy_rng_state(rng, state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        return state["iteration"], state["history"].numpy(), state["elapsed"]


def _some(names):
    return f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
