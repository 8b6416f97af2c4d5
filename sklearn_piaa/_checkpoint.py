"""Meta-training checkpoints: everything needed to resume a run exactly where it stopped."""

import hashlib
import os

import numpy as np
import torch

from ._io import atomic_write, check_writable_dir

__all__ = ["Checkpointer", "fingerprint"]

FORMAT = "sklearn-piaa-checkpoint"
FORMAT_VERSION = 1
FILENAME = "checkpoint.pt"


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


def _reason(exc, what="a checkpoint"):
    # torch's unpickling errors run to a page of advice that does not apply here, and
    # its advice to load with weights_only=False would run the file's code.
    text = str(exc).strip()
    if "weights_only" in text or "Weights only" in text:
        return f"it holds Python objects that {what} never does"
    return text.splitlines()[0][:200] if text else type(exc).__name__


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
        :func:`fingerprint` of the run; a checkpoint of another run is refused.
    """

    def __init__(self, directory, every, run_id):
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.run_id = run_id
        check_writable_dir(self.directory, what="checkpoint_dir")
        self.path = os.path.join(self.directory, FILENAME)

    def due(self, iteration, n_iterations):
        """Whether to write after ``iteration`` (1-based count of finished iterations)."""
        return iteration % self.every == 0 or iteration == n_iterations

    def save(self, iteration, prior, algo, rng, history, elapsed, device):
        """Write the state after ``iteration`` finished iterations."""
        state = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "run_id": self.run_id,
            "iteration": int(iteration),
            "prior": {k: v.detach().cpu() for k, v in prior.state_dict().items()},
            "algorithm": algo.state_dict(),
            "numpy_rng": _numpy_rng_state(rng),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(device) if device.type == "cuda" else None),
            "history": torch.from_numpy(np.asarray(history[:iteration], dtype=np.float64)),
            "elapsed": float(elapsed),
        }
        atomic_write(self.path, lambda fh: torch.save(state, fh))

    def load(self):
        """The saved state, or ``None`` when the directory holds no checkpoint."""
        if not os.path.isfile(self.path):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            raise ValueError(f"checkpoint {self.path} cannot be read ({_reason(exc)}); "
                             "delete it to start over.") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a sklearn-piaa checkpoint.")
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"checkpoint {self.path} has format version {state.get('format_version')}; "
                f"this sklearn-piaa reads version {FORMAT_VERSION}. Finish the run with the "
                "version that wrote it, or delete the checkpoint to start over.")
        if state["run_id"] != self.run_id:
            raise ValueError(
                f"checkpoint {self.path} belongs to another run (different data or "
                "settings); use another checkpoint_dir, or delete the file to start over.")
        return state

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
