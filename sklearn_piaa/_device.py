"""The one place where devices are resolved and tensors are moved."""

import contextlib
import copy
import functools
import shlex
import threading
import warnings

import torch
from sklearn.utils._param_validation import InvalidParameterError

from ._pickled import fill_new_params
from ._warnings import PIAAWarning, warn_caller

__all__ = ["resolve_device", "usable", "to_device", "seeded", "trains", "autocast", "off_cpu",
           "cpu_copies", "PickledOnCPU", "unpickled_device"]


def resolve_device(device, option=None):
    """Return a :class:`torch.device` for ``device``, with a clear error if unusable.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    option : str, default=None
        The command-line option that gave ``device`` (``"--device"``): the errors then
        spell it, and the fix, as it is typed there (``--device cpu``), not as the
        Python parameter (``device='cpu'``).

    Returns
    -------
    torch.device

    Raises
    ------
    InvalidParameterError
        (a ``ValueError`` and a ``TypeError``) If ``device`` is neither a str nor a
        :class:`torch.device`, e.g. an int.
    ValueError
        If ``device`` names no torch device, or one this machine does not have.
    """
    if not isinstance(device, (str, torch.device)):
        # torch reads an int as a CUDA index, but the estimators' parameter validation
        # refuses it (with sklearn's error class, raised here too): one rule everywhere.
        raise InvalidParameterError(
            f"device={device!r} is not a valid device argument: give a str, such as 'cpu' "
            f"or 'cuda:0', or a torch.device, as the estimators take (got "
            f"{type(device).__name__}).")
    if option is None:
        given, cpu = f"device={device!r}", "device='cpu'"
    else:
        given, cpu = f"{option} {shlex.quote(str(device))}", f"{option} cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{given} is not a valid torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{given} was requested but CUDA is not available on this machine; "
            f"use {cpu}."
        )
    if dev.type == "cuda" and dev.index is not None \
            and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{given} was requested but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    if dev.type not in ("cpu", "cuda") and not _available(dev.type):
        raise ValueError(f"{given} was requested but this torch cannot use "
                         f"{dev.type!r} devices here; use {cpu}.")
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


def off_cpu(obj):
    """Whether a tensor, or any parameter or buffer of a module, lies off the CPU.

    Parameters
    ----------
    obj : Tensor or nn.Module

    Returns
    -------
    bool
    """
    if isinstance(obj, torch.Tensor):
        return obj.device.type != "cpu"
    return any(t.device.type != "cpu" for t in (*obj.parameters(), *obj.buffers()))


def cpu_copies(state):
    """``state`` with CPU copies of the tensors and modules that lie off the CPU.

    For ``__getstate__``: a pickle records each tensor's device, and one written on a
    GPU fails to load on a machine without one (a GPU-trained model sent to a laptop).
    The live object keeps its tensors where they are.

    Parameters
    ----------
    state : dict
        An object's ``__dict__`` (or a copy of it). Tensors and modules are looked for
        as its values and inside plain dicts, lists and tuples among them.

    Returns
    -------
    dict
        ``state`` itself when everything lies on the CPU; else a new dict whose changed
        values (and the containers holding them) are new.
    """
    new = {k: _cpu_copy(v) for k, v in state.items()}
    return state if all(new[k] is state[k] for k in state) else new


class PickledOnCPU:
    """Mixin of the estimators: pickled with :func:`cpu_copies` of their state.

    Unpickled with the parameters added since they were pickled (if any) set to their
    defaults (``_pickled.fill_new_params``).

    ``copy.copy`` and ``copy.deepcopy`` would go through ``__getstate__`` too: a shallow
    copy would copy every network on a GPU to the CPU (and back), and a deep copy would
    leave the networks it does not move back (a backbone module given as a parameter)
    on the CPU while its ``device`` reads ``"cuda"``. They copy the state as it is.
    """

    def __getstate__(self):
        return cpu_copies(super().__getstate__())

    def __copy__(self):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __setstate__(self, state):
        super().__setstate__(state)
        fill_new_params(self)

    def __deepcopy__(self, memo):
        new = object.__new__(type(self))
        memo[id(self)] = new  # before the state: a network may refer back to its model
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


def _cpu_copy(obj):
    if isinstance(obj, torch.Tensor):
        if not off_cpu(obj):
            return obj
        return obj.detach().to("cpu", copy=True).requires_grad_(obj.requires_grad)
    if isinstance(obj, torch.nn.Module):
        # deepcopy first: Module.cpu() moves the live module itself
        return copy.deepcopy(obj).cpu() if off_cpu(obj) else obj
    if type(obj) is dict:
        return cpu_copies(obj)
    if type(obj) in (list, tuple):
        new = [_cpu_copy(v) for v in obj]
        return obj if all(a is b for a, b in zip(new, obj)) else type(obj)(new)
    return obj


def unpickled_device(device):
    """``device`` for an unpickled model: as pickled, or ``"cpu"`` where it is missing.

    Parameters
    ----------
    device : str, torch.device or None
        The device the model was pickled with.

    Returns
    -------
    str, torch.device or None
        ``device``, or ``"cpu"`` with a :class:`PIAAWarning` when this machine cannot
        use it (its tensors were pickled as CPU copies, see :func:`cpu_copies`, or are
        loaded on the CPU by skorch).
    """
    if device is None or usable(device):
        return device
    # One text for the prior and the nets inside a model: the warning shows once.
    warnings.warn(f"a model pickled with device={str(device)!r} was loaded on this machine, "
                  "which does not have that device: it runs on the CPU (device='cpu').",
                  PIAAWarning, stacklevel=3)
    return "cpu"


# torch has one global generator per device: seeded blocks running at once in two
# threads (joblib's threading backend, a thread pool of personalizations) would reseed
# and draw from each other's stream, and restore each other's state on exit. They take
# turns instead; a thread inside a seeded block may enter another (RLock).
_SEEDED_LOCK = threading.RLock()


def trains(fit):
    """Run ``fit`` with gradients on and outside the caller's autocast.

    A fit called inside the caller's ``torch.no_grad()`` or ``torch.inference_mode()``
    (around a whole pipeline, say) failed where it trains by autograd (MAML, the whole
    network, PA-IAA, task vectors): "element 0 of tensors does not require grad". One
    inside the caller's ``torch.autocast("cpu", dtype=torch.bfloat16)`` failed in the
    hand-written head steps ("Expected out tensor to have dtype c10::BFloat16"): the
    package's own ``mixed_precision`` says where bfloat16 runs.
    """
    @functools.wraps(fit)
    def fit_with_grad(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode(False))
            stack.enter_context(torch.enable_grad())
            stack.enter_context(torch.autocast("cpu", enabled=False))
            if torch.cuda.is_available():  # (a warning where CUDA is not)
                stack.enter_context(torch.autocast("cuda", enabled=False))
            return fit(*args, **kwargs)
    return fit_with_grad


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
        # The networks are float32, as the features, pixels and cached embeddings are:
        # a caller's torch.set_default_dtype(torch.float64) built float64 layers that
        # failed on them ("mat1 and mat2 must have the same dtype").
        dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)


# Measured on a 2-core AMD EPYC (AVX2, no AVX-512): benchmarks/RESULTS.md, session 32.
SLOW_BFLOAT16 = (
    "mixed_precision is set, but this CPU has no bfloat16 support in torch (its CPU "
    "capability: {capability}), so bfloat16 runs emulated, far slower than float32: on a "
    "2-core AMD EPYC (AVX2) embedding ran 20x and prediction 6x slower. Set "
    "mixed_precision=False (without --mixed-precision on the command line) on this "
    "machine; bfloat16 paid on CPUs with bfloat16 instructions (AVX-512 BF16, AMX) "
    "and saves memory on GPUs. "
    "(Warned once per process.)")
_SLOW_BFLOAT16_WARNED = []  # once per process: a block runs per batch


@functools.cache
def cpu_bfloat16_is_slow():
    """Whether bfloat16 products on this CPU run without hardware support (emulated).

    torch's oneDNN takes bfloat16 on CPUs with AVX-512 (fast with AVX-512 BF16 or AMX);
    elsewhere (AVX2 CPUs: older Intel, AMD before Zen 4) bfloat16 is emulated: on a
    2-core AMD EPYC, EfficientNet-Lite0 embedded 20x slower than in float32.

    Returns
    -------
    bool
        True where torch reports no oneDNN bfloat16 support; False where it does, or
        where this build of torch cannot tell.
    """
    try:
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a build without the check (or oneDNN)
        return False


def autocast(device, enabled=True):
    """Mixed precision for a block: bfloat16 autocast on ``device``'s type, or nothing.

    bfloat16 has float32's range, so training needs no gradient scaling on either device
    type; matrix products and convolutions run in bfloat16, reductions in float32. The
    first such block of a process on a CPU without bfloat16 support warns that it is
    slower there (:func:`cpu_bfloat16_is_slow`).
    """
    dev = torch.device("cpu" if device is None else device)
    if enabled and dev.type == "cpu" and not _SLOW_BFLOAT16_WARNED and cpu_bfloat16_is_slow():
        _SLOW_BFLOAT16_WARNED.append(True)
        warn_caller(SLOW_BFLOAT16.format(capability=torch.backends.cpu.get_cpu_capability()))
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bool(enabled))
