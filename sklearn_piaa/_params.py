"""Parameter checks scikit-learn's constraints leave out: a bool given for a number."""

import numpy as np
from sklearn.utils._param_validation import Interval, InvalidParameterError

__all__ = ["NumbersNotBools", "refuse_bool_numbers"]


def _takes_numbers_only(options):
    return (any(isinstance(c, Interval) for c in options)
            and not any(c is bool or (isinstance(c, str) and c == "boolean") for c in options))


def refuse_bool_numbers(constraints, params, caller_name):
    """Refuse ``True``/``False`` for a parameter whose constraints take numbers only.

    scikit-learn counts a bool as an integer, so ``inner_steps=True`` ran one step and
    ``n_iterations=True`` failed deep inside NumPy.

    Parameters
    ----------
    constraints : dict
        ``_parameter_constraints``-like: each name's list of constraints.
    params : dict
        The values, by name (names without constraints are left alone).
    caller_name : str
        The estimator's or function's name, for the message.

    Raises
    ------
    InvalidParameterError
    """
    for name, value in params.items():
        if isinstance(value, (bool, np.bool_)) and _takes_numbers_only(constraints.get(name, ())):
            raise InvalidParameterError(
                f"The {name!r} parameter of {caller_name} must be a number, not a bool; "
                f"got {value!r}.")


class NumbersNotBools:
    """Mixin: ``_validate_params`` refuses a bool for a numeric parameter too.

    Place it before ``BaseEstimator`` among the bases.
    """

    def _validate_params(self):
        super()._validate_params()
        refuse_bool_numbers(self._parameter_constraints, self.get_params(deep=False),
                            type(self).__name__)
