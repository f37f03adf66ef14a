"""Exceptions raised by vmapsim.

Every exception carries ``.errno``.  A plain :class:`VmapError` is the
modelled kernel's own error return (``ERR_PTR(-EINVAL)``, ``-EBUSY``,
``-ENOMEM``, ``-EEXIST``): the kernel received the call and refused it.  Its
subclasses :class:`VmapArgumentError` and :class:`VmapTypeError` (errno
``EINVAL``) say the call is not one the kernel could receive -- a wrong
Python type, a value outside its C type, a CPU that does not exist -- or one
the model refuses on purpose (docs/divergences.md).
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
    """A value the kernel cannot receive (or the model refuses): names the
    argument and the rule it breaks (EINVAL)."""

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
