"""A test-only series ``fake`` with answers known by construction (for the bisect and
pytest-plugin tests; never registered outside a test).

Thirteen stages, each a copy of stage ``maple:0`` except for what the table
says; the ``fake_ops`` workload reads the stage's features:

| stage | layout | busy / lazy | feature | what shows |
|---|---|---|---|---|
| 0 | rb (72 B) | rb | | |
| 1-3 | rb | rb | ``fake_lose`` | with a fault injector on: one vfree of an address that is no area ("nonexistent vm area") |
| 4 | maple (48 B) | rb | ``fake_lose`` | ``struct_vmap_area_size`` 72 -> 48 |
| 5 | maple | rb | | the loss is gone |
| 6-9 | maple | maple | | maple node allocations (``node_allocs > 0``) |
| 10 | maple | maple | ``fake_extra`` | one extra vmalloc at op ``EXTRA_AT``: the trace parts there |
| 11 | maple | maple | ``fake_extra``, ``fake_ubsan`` | a UBSAN and a KASAN line in the log |
| 12 | maple | maple | ``fake_extra`` | both lines are gone |
"""

from __future__ import annotations

import random

import vmapsim
from vmapsim import PAGE_SIZE, Stage, Workload
from vmapsim.kernel.layout import VMAP_AREA_MAPLE, VMAP_AREA_RB

SERIES = "fake"
NUMBERS = tuple(range(13))
EXTRA_AT = 100  # index of the operation where fake_extra's extra vmalloc goes
#: known answers
SHRINKS_AT = 4
LOSS_FROM, LOSS_UNTIL = 1, 4
MAPLE_NODES_FROM = 6
TRACE_PARTS_AT = 10
UBSAN_AT = 11


def fake_stage(n: int) -> Stage:
    features = {}
    if LOSS_FROM <= n <= LOSS_UNTIL:
        features["fake_lose"] = True
    if n >= TRACE_PARTS_AT:
        features["fake_extra"] = True
    if n == UBSAN_AT:
        features["fake_ubsan"] = True
    busy = "maple" if n >= MAPLE_NODES_FROM else "rb"
    return Stage(
        number=n,
        title=f"fake: patch {n}",
        components={"free": "rb", "busy": busy, "lazy": busy, "coalesce": "list-neighbour"},
        layout=VMAP_AREA_MAPLE if n >= SHRINKS_AT else VMAP_AREA_RB,
        features=features,
        series=SERIES,
    )


def fake_ops(allocator, *, seed: int = 0, nr_ops: int = 400, **_mixed_params):
    """vmalloc / vfree of 1-8 pages, half the live areas freed at random; see the module doc.

    ``mixed``'s other parameters are accepted and ignored, so the worked examples'
    flags run unchanged on the fake series."""
    rng = random.Random(seed)
    feats = allocator.stage.features
    live: list[int] = []
    done = {"vmalloc": 0, "vfree": 0}
    for i in range(nr_ops):
        if i == EXTRA_AT and feats.get("fake_extra"):
            allocator.vmalloc(PAGE_SIZE)  # kept: every later address may move
        if live and rng.random() < 0.45:
            allocator.vfree(live.pop(rng.randrange(len(live))))
            done["vfree"] += 1
        else:
            addr = allocator.vmalloc(rng.randint(1, 8) * PAGE_SIZE)
            done["vmalloc"] += 1
            if addr is not None:
                live.append(addr)
    if feats.get("fake_lose") and allocator.faults.config.probability > 0:
        allocator.vfree(allocator.vmalloc_end - 64 * PAGE_SIZE)  # no area there
    if feats.get("fake_ubsan"):
        allocator.log.append("UBSAN: array-index-out-of-bounds in fake_ops")
        allocator.log.append("BUG: KASAN: use-after-free in fake_ops")
    for addr in live:
        allocator.vfree(addr)
        done["vfree"] += 1
    from vmapsim.framework.workloads import WorkloadReport

    return WorkloadReport("fake_ops", {"seed": seed, "nr_ops": nr_ops}, done)


class FakeSeriesPlugin:
    """The plugin object: the ``fake`` series and the ``fake_ops`` workload."""

    @vmapsim.hookimpl
    def vmapsim_stages(self):
        return [fake_stage(n) for n in NUMBERS]

    @vmapsim.hookimpl
    def vmapsim_workloads(self):
        return [Workload("fake_ops", "the fake series' workload (tests only)", fake_ops)]


def fake_registry():
    """vmapsim's own registry plus the fake series (an explicit plugin list)."""
    from vmapsim.framework.registry import load_registry

    return load_registry(plugins=[("fake", FakeSeriesPlugin())])
