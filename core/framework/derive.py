"""A stage series of a plugin's own, derived from the built-in one.

A plugin that fills a role with its own component often wants the whole
series with that swap -- to ``bisect``, ``compare`` and ``run`` it stage by
stage beside the built-in (``vmapsim compare maple:7 bptree:7``).
:func:`derive_series` returns the built-in stages as new :class:`Stage`s of
a series named by the plugin, with the swaps applied where the stage fills
the role; the plugin returns them from its ``vmapsim_stages`` hook
(docs/plugins.md, "A series of your own").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from vmapsim.framework.descriptors import Stage
from vmapsim.framework.roles import ROLES

__all__ = ["derive_series"]

Swaps = Mapping[str, "str | None"]


def derive_series(
    series: str,
    swaps: Swaps | Callable[[Stage], Swaps],
    *,
    stages: Iterable[int] | None = None,
    only_where_filled: bool = True,
    skip_unchanged: bool = False,
    base: Sequence[Stage] | None = None,
) -> list[Stage]:
    """The built-in series' stages (or ``base``) as series ``series``, each
    with ``swaps`` applied.

    ``swaps`` maps a role to a component name (``"bptree"``, ``"sorted"``,
    ``"NAME:key=value"``) or to None (the role is removed), or is a function
    of the built-in :class:`Stage` returning such a mapping (per-stage
    swaps).  With ``only_where_filled`` (the default) a role is swapped only
    at the stages that fill it -- ``{"occupied": "bptree"}`` changes stages
    2-12 and leaves 0-1, which have no occupied index, as they are; with
    False the role is added (it must be one a stage may add, e.g.
    ``overlay``).  ``stages`` keeps only those numbers; ``skip_unchanged``
    drops the stages no swap changed.  Titles gain the swaps
    (``"... [occupied=bptree]"``); numbers, layouts and features are the
    built-in stage's, so ``bptree:7`` is ``maple:7`` with one component
    swapped.  The stages are validated as any ``Stage`` is (a ``free`` index
    needs a ``coalesce``r: add ``"coalesce": "generic"`` when you swap in a
    free index of your own).
    """
    if base is None:
        from vmapsim.framework.series import STAGES

        base = STAGES
    if not callable(swaps) and not isinstance(swaps, Mapping):
        raise TypeError(
            f"swaps: must be a mapping ROLE -> NAME or a function of the Stage "
            f"(got {type(swaps).__name__})"
        )
    wanted = None if stages is None else set(stages)
    out: list[Stage] = []
    for st in base:
        if wanted is not None and st.number not in wanted:
            continue
        chosen = swaps(st) if callable(swaps) else swaps
        components = dict(st.components)
        applied: list[str] = []
        for role, name in chosen.items():
            if role not in ROLES:
                raise ValueError(f"swaps: unknown role {role!r}; roles are {sorted(ROLES)}")
            if only_where_filled and role not in components:
                continue
            if name is None:
                if components.pop(role, None) is not None:
                    applied.append(f"-{role}")
            elif components.get(role) != name:
                components[role] = name
                applied.append(f"{role}={name}")
        if skip_unchanged and not applied:
            continue
        title = f"{st.title} [{' '.join(applied)}]" if applied else st.title
        out.append(attrs.evolve(st, series=series, components=components, title=title))
    if not out:
        raise ValueError(
            f"derive_series({series!r}): no stage left (stages={sorted(wanted or ())}, "
            f"skip_unchanged={skip_unchanged})"
        )
    return out
