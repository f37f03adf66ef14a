"""``--faults SPEC``: a failslab configuration written on one line.

``SPEC`` is colon-separated fields; the first names the caches, the rest are
flags and ``key=value`` settings of :class:`~vmapsim.FailslabConfig`:

    maple_node:probability=5                 5 % of non-blocking maple node allocations fail
    maple_node,vmap_area:probability=100:times=3
    all:any:probability=10:interval=4        every cache, blocking requests too

- caches: ``maple_node``, ``vmap_area``, a comma list of them, or ``all``
  (failslab's ``cache-filter``);
- ``nowait`` (the default): only non-blocking requests fail (failslab's
  ``ignore-gfp-wait=Y``); ``any``: blocking requests may fail too;
- ``probability=P``: percent, an integer 0..100, as failslab's
  ``probability`` file (``probability=5`` is 5 %);
- ``interval=N`` (only every N-th eligible call may fail), ``times=N`` (at
  most N failures, -1 = unlimited), ``seed=S`` (the injector's own seed;
  default: the run's ``--seed``).
"""

from __future__ import annotations

from vmapsim.checking.faults import FailslabConfig

__all__ = ["CACHES", "FaultSpecError", "parse_faults"]

#: the caches the model allocates from (failslab cache names)
CACHES = ("maple_node", "vmap_area")
_INT_KEYS = ("probability", "interval", "times", "seed")


class FaultSpecError(ValueError):
    """A ``--faults`` value that does not follow the spec."""


def parse_faults(spec: str, *, seed: int = 0) -> FailslabConfig:
    """The :class:`FailslabConfig` that ``spec`` describes (see the module docstring)."""
    fields = [f.strip() for f in str(spec).split(":")]
    if not fields or not fields[0]:
        raise FaultSpecError(
            f"--faults {spec!r}: must start with the cache(s) to fail: "
            f"{', '.join(CACHES)}, a comma list of them, or all"
        )
    caches_field, *rest = fields
    if caches_field == "all":
        cache_filter = None
    else:
        caches = [c.strip() for c in caches_field.split(",")]
        unknown = [c for c in caches if c not in CACHES]
        if unknown:
            raise FaultSpecError(
                f"--faults {spec!r}: unknown cache(s) {', '.join(unknown)}; caches: "
                f"{', '.join(CACHES)} or all"
            )
        cache_filter = frozenset(caches)
    values: dict[str, int] = {"seed": seed}
    ignore_gfp_wait = True
    for item in rest:
        if item in ("nowait", "any"):
            ignore_gfp_wait = item == "nowait"
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in _INT_KEYS:
            raise FaultSpecError(
                f"--faults {spec!r}: {item!r} is not nowait, any or KEY=VALUE with KEY one of "
                f"{', '.join(_INT_KEYS)}"
            )
        try:
            values[key] = int(raw)
        except ValueError:
            hint = ""
            if key == "probability":
                hint = " (probability is a percentage, 0..100, as failslab's: 5 means 5 %)"
            raise FaultSpecError(
                f"--faults {spec!r}: {key} must be an integer{hint} (got {raw!r})"
            ) from None
    if "probability" not in values:
        raise FaultSpecError(
            f"--faults {spec!r}: give probability=P (percent, 0..100); without it nothing fails"
        )
    try:
        return FailslabConfig(
            probability=values["probability"],
            interval=values.get("interval", 1),
            times=values.get("times", -1),
            ignore_gfp_wait=ignore_gfp_wait,
            cache_filter=cache_filter,
            seed=values["seed"],
        )
    except ValueError as exc:
        raise FaultSpecError(f"--faults {spec!r}: {exc}") from None
