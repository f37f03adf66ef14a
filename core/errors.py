"""Exceptions raised by vmapsim.

Every exception carries ``.errno``: the kernel's errno where the kernel would
return one (``ERR_PTR(-EINVAL)``, ``-EBUSY``, ``-ENOMEM``, ``-EEXIST``), and
``EINVAL`` for bad arguments the kernel would BUG on.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "AmbiguousComponentError",
    "ComponentError",
    "InvariantError",
    "PluginError",
    "PluginWarning",
    "UnknownComponentError",
    "UnknownStageError",
    "VmapArgumentError",
    "VmapError",
    "VmapTypeError",
]


class VmapError(Exception):
    """Base class: an error the modelled kernel code reports with an errno."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err

    def __str__(self) -> str:  # pragma: no cover - trivial
        return f"[{_errno.errorcode.get(self.errno, self.errno)}] {self.args[0]}"


class VmapArgumentError(VmapError, ValueError):
    """A bad argument value: names the argument and the rule it breaks (EINVAL)."""

    def __init__(self, argument: str, rule: str, value: object = None) -> None:
        shown = f" (got {value!r})" if value is not None else ""
        super().__init__(_errno.EINVAL, f"{argument}: {rule}{shown}")
        self.argument = argument
        self.rule = rule


class VmapTypeError(VmapError, TypeError):
    """An argument of the wrong type (EINVAL)."""

    def __init__(self, argument: str, expected: str, value: object) -> None:
        super().__init__(
            _errno.EINVAL, f"{argument}: must be {expected} (got {type(value).__name__})"
        )
        self.argument = argument


class InvariantError(AssertionError):
    """``check_invariants()`` found the model in a state the kernel never reaches."""


class PluginError(Exception):
    """A plugin failed to load or registered something invalid."""


class ComponentError(PluginError):
    """A component factory returned something that does not fill its role."""


class UnknownComponentError(LookupError):
    """No component of that name is registered for the role."""


class AmbiguousComponentError(UnknownComponentError):
    """Two third-party plugins ship the name; ``plugin:name`` chooses one."""


class PluginWarning(UserWarning):
    """Plugins failed to load (issued once per registry by ``build()``)."""


class UnknownStageError(LookupError):
    """No stage of that number or name is registered."""
