"""What the estimators share: scikit-learn's parameter protocol with ``**extra`` keywords, and
the one fitted-check."""

from __future__ import annotations

import inspect
from typing import Any

from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from ..errors import InputError


class NotFittedError(InputError, SklearnNotFittedError):
    """A method that needs a fitted estimator was called before ``fit``: scikit-learn's
    ``NotFittedError`` and latentforge's ``InputError`` at once (the CLI reports it in one line)."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong type (e.g. a non-number in a numeric array): an :class:`InputError` for
    the CLI and a ``TypeError`` for scikit-learn's conventions."""


def extra_params_property(name: str, doc: str) -> property:
    """A dict-valued attribute ``name`` stored privately as ``_name``.

    The ``**extra`` keywords of an estimator live there: ``get_params`` lists them flat, and
    scikit-learn's rule that ``__init__`` sets no public attribute besides its parameters holds.
    """
    private = f"_{name}"

    def get(self: Any) -> dict[str, Any]:
        return self.__dict__.setdefault(private, {})

    def set_(self: Any, value: dict[str, Any]) -> None:
        self.__dict__[private] = dict(value)

    return property(get, set_, doc=doc)


class ExtraParamsMixin:
    """scikit-learn's parameter protocol for estimators whose ``__init__`` also takes ``**extra``.

    The named arguments are attributes; the extra keywords live in the dict attribute named by
    ``_extra_params`` and are listed by ``get_params`` beside them, so ``clone`` and grid search
    see them too.
    """

    _extra_params: str = "extra"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    @classmethod
    def param_names(cls) -> list[str]:
        """The named constructor parameters (without the ``**extra`` keywords)."""
        return cls._get_param_names()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self._get_param_names()}, **getattr(self, self._extra_params)}

    def set_params(self, **params: Any) -> Any:
        names = set(self._get_param_names())
        for key, value in params.items():
            if key in names:
                setattr(self, key, value)
            else:
                getattr(self, self._extra_params)[key] = value
        return self


def require_fitted(estimator: Any, how: str = "fit(X)") -> None:
    """:class:`NotFittedError` unless ``fit`` (or ``load``) has run on ``estimator``.

    The test is scikit-learn's ``check_is_fitted``'s: the object has an attribute ending in ``_``.
    """
    if not any(k.endswith("_") and not k.startswith("__") for k in vars(estimator)):
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call {how} first.")
