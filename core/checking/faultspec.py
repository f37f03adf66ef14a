"""``--faults SPEC``: fault-injection settings written on one line.

``SPEC`` is one or more injector specs joined by ``+``.  Each is
colon-separated fields; the first names what fails, the rest are flags and
``key=value`` settings (the kernel's debugfs file names, ``-`` or ``_``):

    maple_node:probability=5                 5 % of non-blocking maple node allocations fail
    maple_node,vmap_area:probability=100:times=3
    all:any:probability=10:interval=4        every cache, blocking requests too
    kmalloc:probability=100                  every kmalloc-<size> cache (vmap blocks, page arrays)
    page:probability=100:min-order=6         fail_page_alloc: order >= 6 fails, order 0 does not
    maple_node:probability=5+page:probability=100:min-order=6   both injectors

failslab (first field: caches)

- caches: ``maple_node``, ``vmap_area``, a ``kmalloc-<size>`` cache
  (``kmalloc-8`` ... ``kmalloc-8k``), ``kmalloc`` (all of them), a comma list,
  or ``all`` (failslab's ``cache-filter=N``);

fail_page_alloc (first field: ``page`` or ``fail_page_alloc``)

- ``min-order=N`` (default 1: order-0 pages never fail),
  ``ignore-gfp-highmem=0|1`` (default 1: vmalloc's own pages, allocated with
  ``__GFP_HIGHMEM``, are spared), ``highmem`` (= ``ignore-gfp-highmem=0``);

both

- ``nowait`` (the default): only non-blocking requests fail (``ignore-gfp-wait=Y``);
  ``any`` (or ``ignore-gfp-wait=0``): blocking requests may fail too;
- ``probability=P``: percent, an integer 0..100 (``probability=5`` is 5 %);
- ``interval=N`` (only every N-th eligible call may fail), ``times=N`` (at
  most N failures, -1 = unlimited), ``seed=S`` (the injector's own seed;
  default: the run's ``--seed``).

The injectors are armed when the allocator is built, as the ``failslab=`` /
``fail_page_alloc=`` boot parameters arm them: ``vmalloc_init()``'s own
``GFP_NOWAIT`` allocations can fail (docs/bisect.md says what the kernel
does then).
"""

from __future__ import annotations

from attrs import evolve

from vmapsim.checking.faults import FailPageAllocConfig, FailslabConfig

__all__ = [
    "CACHES",
    "KMALLOC_CACHES",
    "PAGE_INJECTOR",
    "FaultSpecError",
    "format_faults",
    "parse_faults",
]

#: ``kmalloc_caches[]`` of SLUB with 4 KiB pages (KMALLOC_MAX_CACHE_SIZE = 8 KiB)
KMALLOC_CACHES = (
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
)
#: the caches the model allocates from (failslab cache names)
CACHES = ("maple_node", "vmap_area", "kmalloc", *KMALLOC_CACHES)
#: first-field names of the page injector
PAGE_INJECTOR = ("page", "fail_page_alloc")
_INT_KEYS = ("probability", "interval", "times", "seed")
_PAGE_KEYS = ("min_order", "ignore_gfp_highmem")
_BOOL_KEYS = ("ignore_gfp_wait", "ignore_gfp_highmem")


class FaultSpecError(ValueError):
    """A ``--faults`` value that does not follow the spec."""


def parse_faults(spec: str, *, seed: int = 0) -> FailslabConfig:
    """The configuration that ``spec`` describes (see the module docstring):
    a :class:`FailslabConfig` whose ``fail_page_alloc`` holds the page
    injector's settings when ``spec`` names one."""
    parts = [p for p in str(spec).split("+")]
    slab: FailslabConfig | None = None
    page: FailPageAllocConfig | None = None
    for part in parts:
        head = part.split(":", 1)[0].strip()
        if head in PAGE_INJECTOR:
            if page is not None:
                raise FaultSpecError(f"--faults {spec!r}: the page injector is given twice")
            page = _parse_one(spec, part, seed, page_injector=True)  # type: ignore[assignment]
        else:
            if slab is not None:
                raise FaultSpecError(
                    f"--faults {spec!r}: failslab is given twice (one cache list, comma-separated)"
                )
            slab = _parse_one(spec, part, seed, page_injector=False)  # type: ignore[assignment]
    if slab is None:
        slab = FailslabConfig(seed=seed)
    return evolve(slab, fail_page_alloc=page) if page is not None else slab


def _parse_one(
    spec: str, part: str, seed: int, *, page_injector: bool
) -> FailslabConfig | FailPageAllocConfig:
    fields = [f.strip() for f in part.split(":")]
    if not fields or not fields[0]:
        raise FaultSpecError(
            f"--faults {spec!r}: each part must start with the cache(s) to fail: "
            f"{', '.join(CACHES)}, a comma list of them, or all; or with page "
            "(fail_page_alloc)"
        )
    head, *rest = fields
    cache_filter: frozenset[str] | None = None
    if not page_injector and head != "all":
        caches = [c.strip() for c in head.split(",")]
        unknown = [c for c in caches if c not in CACHES]
        if unknown:
            raise FaultSpecError(
                f"--faults {spec!r}: unknown cache(s) {', '.join(unknown)}; caches: "
                f"{', '.join(CACHES)} or all; page for fail_page_alloc"
            )
        cache_filter = frozenset(caches)
    values: dict[str, int] = {"seed": seed}
    flags: dict[str, bool] = {"ignore_gfp_wait": True, "ignore_gfp_highmem": True}
    keys = _INT_KEYS + (_PAGE_KEYS if page_injector else ()) + ("ignore_gfp_wait",)
    for item in rest:
        if item in ("nowait", "any"):
            flags["ignore_gfp_wait"] = item == "nowait"
            continue
        if page_injector and item == "highmem":
            flags["ignore_gfp_highmem"] = False
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in keys:
            extra = ", highmem" if page_injector else ""
            raise FaultSpecError(
                f"--faults {spec!r}: {item!r} is not nowait, any{extra} or KEY=VALUE with KEY "
                f"one of {', '.join(k.replace('_', '-') for k in keys)}"
            )
        try:
            value = int(raw)
        except ValueError:
            hint = ""
            if key == "probability":
                hint = " (probability is a percentage, 0..100, as the kernel's: 5 means 5 %)"
            raise FaultSpecError(
                f"--faults {spec!r}: {key.replace('_', '-')} must be an integer{hint} (got {raw!r})"
            ) from None
        if key in _BOOL_KEYS:
            if value not in (0, 1):
                raise FaultSpecError(
                    f"--faults {spec!r}: {key.replace('_', '-')} takes 0 or 1 (got {raw!r})"
                )
            flags[key] = bool(value)
        else:
            values[key] = value
    if "probability" not in values:
        raise FaultSpecError(
            f"--faults {spec!r}: give probability=P (percent, 0..100); without it nothing fails"
        )
    try:
        if page_injector:
            return FailPageAllocConfig(
                probability=values["probability"],
                interval=values.get("interval", 1),
                times=values.get("times", -1),
                ignore_gfp_wait=flags["ignore_gfp_wait"],
                ignore_gfp_highmem=flags["ignore_gfp_highmem"],
                min_order=values.get("min_order", 1),
                seed=values["seed"],
            )
        return FailslabConfig(
            probability=values["probability"],
            interval=values.get("interval", 1),
            times=values.get("times", -1),
            ignore_gfp_wait=flags["ignore_gfp_wait"],
            cache_filter=cache_filter,
            seed=values["seed"],
        )
    except ValueError as exc:
        raise FaultSpecError(f"--faults {spec!r}: {exc}") from None


def format_faults(cfg: FailslabConfig | None) -> str:
    """``cfg`` as a ``--faults`` spec that :func:`parse_faults` reads back
    (seeds left out); ``none`` for None."""
    if cfg is None:
        return "none"
    parts = []
    if cfg.probability or cfg.fail_page_alloc is None:
        caches = ",".join(sorted(cfg.cache_filter)) if cfg.cache_filter else "all"
        mode = "nowait" if cfg.ignore_gfp_wait else "any"
        parts.append(
            f"{caches}:{mode}:probability={cfg.probability}:interval={cfg.interval}"
            f":times={cfg.times}"
        )
    page = cfg.fail_page_alloc
    if page is not None:
        mode = "nowait" if page.ignore_gfp_wait else "any"
        parts.append(
            f"page:{mode}:probability={page.probability}:interval={page.interval}"
            f":times={page.times}:min-order={page.min_order}"
            f":ignore-gfp-highmem={int(page.ignore_gfp_highmem)}"
        )
    return "+".join(parts)
