"""The one place where devices are resolved and tensors are moved."""

import contextlib
import threading

import torch

__all__ = ["resolve_device", "usable", "to_device", "seeded", "autocast"]


def resolve_device(device):
    """Return a :class:`torch.device` for ``device``, with a clear error if unusable.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    torch.device
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='cpu'."
        )
    if dev.type == "cuda" and dev.index is not None \
            and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} was requested but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    if dev.type not in ("cpu", "cuda") and not _available(dev.type):
        raise ValueError(f"device={device!r} was requested but this torch cannot use "
                         f"{dev.type!r} devices here; use device='cpu'.")
    return dev


def _available(kind):
    backend = getattr(torch, kind, None)  # torch.mps, torch.xpu, ...; "meta" holds no data
    try:
        return kind != "meta" and bool(backend is not None and backend.is_available())
    except (AttributeError, RuntimeError):
        return False


def usable(device):
    """Whether :func:`resolve_device` accepts ``device`` on this machine."""
    try:
        resolve_device(device)
    except ValueError:
        return False
    return True


def to_device(obj, device):
    """Move a tensor, module, or a dict/list/tuple of them to ``device``."""
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


# torch has one global generator per device: seeded blocks running at once in two
# threads (joblib's threading backend, a thread pool of personalizations) would reseed
# and draw from each other's stream, and restore each other's state on exit. They take
# turns instead; a thread inside a seeded block may enter another (RLock).
_SEEDED_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed, device="cpu"):
    """Run a block with torch's global RNG seeded, restoring the caller's RNG afterwards.

    Dropout and DataLoader shuffling draw from torch's global generator; forking it
    makes a fit reproducible without changing the random stream the user sees. Seeded
    blocks of several threads run one at a time, so that each sees only its own draws.
    ``seed=None`` forks without seeding: for a block whose draws change no result
    (prediction iterates batches as skorch's DataLoader does, drawing a seed) but must
    neither advance the caller's generator nor draw from another thread's seeded block.
    """
    dev = torch.device("cpu" if device is None else device)
    # torch.manual_seed reseeds every CUDA device's generator: restore all it touches
    cuda_devices = (list(range(torch.cuda.device_count()))
                    if dev.type == "cuda" or torch.cuda.is_initialized() else [])
    with _SEEDED_LOCK, torch.random.fork_rng(devices=cuda_devices):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


def autocast(device, enabled=True):
    """Mixed precision for a block: bfloat16 autocast on ``device``'s type, or nothing.

    bfloat16 has float32's range, so training needs no gradient scaling on either device
    type; matrix products and convolutions run in bfloat16, reductions in float32.
    """
    dev = torch.device("cpu" if device is None else device)
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bool(enabled))
