"""Objects pickled by an earlier sklearn-piaa: parameters added since take their defaults."""

import inspect

from ._warnings import warn_caller

__all__ = ["fill_new_params"]

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def fill_new_params(obj):
    """Give an unpickled ``obj`` the constructor parameters it was pickled without.

    A model pickled (or ``joblib.dump``-ed) before a parameter was added loads without
    that attribute and failed at its first use with a bare ``AttributeError``, which
    named neither the file nor a way out; it now takes the parameter's default, with a
    :class:`~sklearn_piaa.PIAAWarning` that says so.

    Parameters
    ----------
    obj : object
        Just unpickled; its class's ``__init__`` signature names the parameters.
    """
    missing = {p.name: p.default for p in inspect.signature(type(obj).__init__).parameters
               .values() if p.kind in _NAMED and p.name != "self"
               and p.default is not p.empty and p.name not in vars(obj)}
    if not missing:
        return
    # into __dict__: skorch's __setattr__ registers modules and optimizers it is given
    vars(obj).update(missing)
    settings = ", ".join(f"{k}={v!r}" for k, v in missing.items())
    warn_caller(f"this {type(obj).__name__} was pickled by an earlier sklearn-piaa, without "
                f"the parameters added since: they take their defaults ({settings}). Save it "
                "with save_model: model files load in later versions as they were saved.")
