"""Role-level contract tests: one class per role, written from :mod:`vmapsim.framework.roles`.

Subclass the class of your component's role, name the component, and pytest
runs every contract test on it::

    from vmapsim.testing import FreeIndexContract

    class TestMyFree(FreeIndexContract):
        component = "sorted"          # or "myplugin:sorted"

Each test builds the component on its own (:func:`~vmapsim.testing.harness.
make_component`, the context an allocator of :attr:`RoleContract.stage`
would give it) and checks one documented rule against a plain model of the
role.  Adding a role's contract is one class here, registered with
:func:`role_contract`; the allocator-level checks in
:mod:`vmapsim.testing.suite` already cover every role.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmapsim.checking.faults import FailslabConfig
from vmapsim.errors import InvariantError
from vmapsim.framework.descriptors import Stage
from vmapsim.framework.registry import Registry, load_registry
from vmapsim.framework.roles import RESERVED
from vmapsim.kernel.area import VmapArea
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX, VMALLOC_START

from .harness import Built, kit_offer, make_component
from .profiles import kit_settings

__all__ = [
    "CONTRACTS",
    "OVERLAP_WARNING_RE",
    "BusyIndexContract",
    "CoalescerContract",
    "FreeIndexContract",
    "LazyQueueContract",
    "OccupiedIndexContract",
    "OverlayContract",
    "RoleContract",
    "role_contract",
]

P = PAGE_SIZE
BASE = VMALLOC_START
ADDRESS_LIMIT = 1 << 64

#: ``find_va_links()``'s warning text (``insert``/``add``/``merge_or_add`` on overlap)
OVERLAP_WARNING = "vmalloc bug: 0x%x-0x%x overlaps with 0x%x-0x%x"
OVERLAP_WARNING_RE = re.compile(
    r"vmalloc bug: 0x([0-9a-f]+)-0x([0-9a-f]+) overlaps with 0x([0-9a-f]+)-0x([0-9a-f]+)"
)
#: counters a search or lookup is expected to move (at least one of them)
WORK_COUNTERS = ("walks", "nodes_visited", "comparisons")

#: role -> its contract class
CONTRACTS: dict[str, type[RoleContract]] = {}


def role_contract(role: str) -> Any:
    """Class decorator: ``cls`` is the contract of ``role`` (one entry per role)."""

    def register(cls: type[RoleContract]) -> type[RoleContract]:
        cls.role = role
        CONTRACTS[role] = cls
        return cls

    return register


def _run(test: Any, *strategies: Any, kind: str = "unit") -> None:
    """Run ``test`` under Hypothesis with the kit's profile (read at run time)."""
    kit_settings(kind)(given(*strategies)(test))()


# -- plain models and strategies ---------------------------------------------------


def is_within_this_va(block: tuple[int, int], size: int, align: int, vstart: int) -> bool:
    """``is_within_this_va()``: an aligned ``size`` fits in ``block`` at or above vstart."""
    nva = ((max(block[0], vstart) + align - 1) // align * align) % ADDRESS_LIMIT
    if nva + size >= ADDRESS_LIMIT or nva < vstart:
        return False
    return nva + size <= block[1]


def disjoint_blocks(min_n: int = 0, max_n: int = 24, touching: bool = True) -> Any:
    """Sorted, non-overlapping page-aligned ``(start, end)`` blocks above VMALLOC_START."""
    gap = st.integers(0 if touching else 1, 40)
    length = st.integers(1, 64)
    pairs = st.lists(st.tuples(gap, length), min_size=min_n, max_size=max_n)

    def layout(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out, cursor = [], BASE
        for g, n in items:
            start = cursor + g * P
            out.append((start, start + n * P))
            cursor = start + n * P
        return out

    return pairs.map(layout)


def areas(blocks: list[tuple[int, int]]) -> list[VmapArea]:
    return [VmapArea(s, e) for s, e in blocks]


def spans(items: Any) -> list[tuple[int, int]]:
    return [(va.va_start, va.va_end) for va in items]


def merged(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of disjoint blocks with touching ones joined."""
    out: list[list[int]] = []
    for s, e in sorted(blocks):
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def overlapping(target: tuple[int, int], shift: int, length: int) -> tuple[int, int]:
    """A page-aligned range that overlaps ``target`` (shifted by ``shift`` pages)."""
    start = min(target[0] + shift * P, target[1] - P)
    return start, max(start + length * P, target[0] + P)


def merged_or_same(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``blocks`` as an occupied index lists them (no two touch here)."""
    return sorted(blocks)


def assert_overlap_warned(
    log: list[str], new: tuple[int, int], held: list[tuple[int, int]]
) -> None:
    """The last message is the overlap warning for ``new`` and a block it overlaps."""
    assert log, f"no warning logged for the overlapping range {new[0]:#x}-{new[1]:#x}"
    m = OVERLAP_WARNING_RE.search(log[-1])
    assert m, f"expected {OVERLAP_WARNING!r} in the log, got {log[-1]!r}"
    a, b, c, d = (int(x, 16) for x in m.groups())
    assert (a, b) == new, f"the warning names {a:#x}-{b:#x}, not the new range {new}"
    assert (c, d) in held and c < new[1] and d > new[0], (
        f"the warning names {c:#x}-{d:#x}, which is not a held block overlapping {new}"
    )


# -- the base class ------------------------------------------------------------------


class RoleContract:
    """Base of the role contracts: builds the component under test.

    Set :attr:`component` (``name`` or ``plugin:name``); optionally
    :attr:`stage` (default: the first registered stage that fills the role).
    Override the ``vmapsim_component`` fixture instead to name it from a
    fixture.
    """

    role: ClassVar[str] = ""
    component: ClassVar[str] = ""
    stage: ClassVar[int | str | None] = None

    @pytest.fixture(scope="class")
    @classmethod
    def vmapsim_registry(cls) -> Registry:
        """A registry loaded for this class (installed plugins, as ``build()`` sees them)."""
        return load_registry()

    @pytest.fixture
    def vmapsim_component(self, vmapsim_registry: Registry) -> str:
        """The component under test (``name`` or ``plugin:name``).

        Fails every test when the name resolves to a built-in component that a
        third-party plugin also tried to register (a reserved name, rejected):
        the kit would otherwise test the built-in, not the plugin's own.
        """
        if not self.component:
            pytest.fail(f"{type(self).__name__}: set `component = 'NAME'` (the {self.role} name)")
        offer = kit_offer(vmapsim_registry, self.role, self.component)
        if offer.builtin:
            name = offer.component.name
            clash = [
                f"{r.name} ({r.distribution}): {p}"
                for r in vmapsim_registry.plugins
                if not r.builtin
                for p in r.problems
                if p.startswith(f"{self.role}={name}: the name is reserved")
            ]
            if clash:
                pytest.fail(
                    f"component {self.component!r} is the built-in {offer.describe()}, not "
                    f"your plugin's: its registration was rejected: {'; '.join(clash)}; "
                    "rename your component"
                )
        return self.component

    @pytest.fixture
    def kit_stage(self, vmapsim_registry: Registry) -> Stage:
        if self.stage is not None:
            return vmapsim_registry.stage(self.stage)
        stages = vmapsim_registry.stages_with_role(self.role)
        if not stages:
            pytest.skip(f"no registered stage fills role {self.role!r}")
        return stages[0]

    @pytest.fixture
    def make(self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage: Stage) -> Any:
        """``make(**kw)`` builds a fresh component under test."""

        def build(**kw: Any) -> Built:
            return make_component(
                vmapsim_registry, self.role, vmapsim_component, stage=kit_stage, **kw
            )

        return build

    def test_registered(self, vmapsim_registry: Registry, vmapsim_component: str) -> None:
        offer = kit_offer(vmapsim_registry, self.role, vmapsim_component)
        assert self.role in offer.component.roles


# -- free index -------------------------------------------------------------------


@role_contract("free")
class FreeIndexContract(RoleContract):
    """:class:`vmapsim.FreeIndex`: free blocks, address-ordered, no merging."""

    def _filled(
        self, make: Any, blocks: list[tuple[int, int]], seed: int = 0
    ) -> tuple[Built, list[VmapArea]]:
        built = make()
        vas = areas(blocks)
        order = list(vas)
        random.Random(seed).shuffle(order)
        for va in order:
            assert built.obj.insert(va) is True, f"insert({va!r}) into a disjoint set refused"
        return built, vas

    def test_empty(self, make: Any) -> None:
        f = make().obj
        assert len(f) == 0 and list(f) == []
        assert f.first() is None and f.last() is None
        assert f.find_enclosing(BASE) is None
        assert f.find_vmap_lowest_match(P, P, BASE, False) is None
        f.check()

    def test_insert_orders_links_and_finds(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], seed: int) -> None:
            built, vas = self._filled(make, blocks, seed)
            f = built.obj
            assert spans(f) == blocks, "iteration is not in address order"
            assert len(f) == len(blocks)
            assert f.first() is (vas[0] if vas else None)
            assert f.last() is (vas[-1] if vas else None)
            for i, va in enumerate(vas):
                assert f.next_block(va) is (vas[i + 1] if i + 1 < len(vas) else None)
                assert f.prev_block(va) is (vas[i - 1] if i else None)
                assert f.find_enclosing(va.va_start) is va
                assert f.find_enclosing(va.va_end - 1) is va
                if i + 1 == len(vas) or vas[i + 1].va_start != va.va_end:
                    assert f.find_enclosing(va.va_end) is None
            if vas and vas[0].va_start > 1:
                assert f.find_enclosing(vas[0].va_start - 1) is None
            f.check()
            assert built.log == [], f"unexpected warnings: {built.log}"

        _run(check, disjoint_blocks(), st.integers(0, 2**16))

    def test_insert_with_near_hint(self, make: Any) -> None:
        """``va_clip``'s NE fit: shrink a block, then link the left remainder ``near`` it."""

        def check(blocks: list[tuple[int, int]], pick: int, cut: int) -> None:
            built, vas = self._filled(make, blocks)
            va = vas[pick % len(vas)]
            pages = (va.va_end - va.va_start) // P
            if pages < 3:
                return
            left = cut % (pages - 2) + 1
            lva = VmapArea(va.va_start, va.va_start + left * P)
            va.va_start += (left + 1) * P
            built.obj.propagate(va)
            assert built.obj.insert(lva, va) is True
            want = sorted([(v.va_start, v.va_end) for v in vas] + [(lva.va_start, lva.va_end)])
            assert spans(built.obj) == want
            assert built.obj.next_block(lva) is va and built.obj.prev_block(va) is lva
            built.obj.check()

        _run(
            check,
            disjoint_blocks(min_n=1, touching=False),
            st.integers(0, 2**16),
            st.integers(0, 2**16),
        )

    def test_overlapping_insert_is_refused_and_warned(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], pick: int, shift: int, length: int) -> None:
            built, _vas = self._filled(make, blocks)
            new = overlapping(blocks[pick % len(blocks)], shift, length)
            before = spans(built.obj)
            assert built.obj.insert(VmapArea(*new)) is False, f"overlapping insert {new} accepted"
            assert_overlap_warned(built.log, new, blocks)
            assert spans(built.obj) == before and len(built.obj) == len(before)
            built.obj.check()

        _run(
            check,
            disjoint_blocks(min_n=1),
            st.integers(0, 2**16),
            st.integers(-8, 63),
            st.integers(1, 80),
        )

    def test_unlink(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], drop: list[bool]) -> None:
            built, vas = self._filled(make, blocks)
            gone = [va for va, d in zip(vas, drop, strict=False) if d]
            for va in gone:
                built.obj.unlink(va)
            kept = [va for va in vas if va not in gone]
            assert spans(built.obj) == spans(kept)
            assert len(built.obj) == len(kept)
            for i, va in enumerate(kept):
                assert built.obj.next_block(va) is (kept[i + 1] if i + 1 < len(kept) else None)
            for va in gone:
                assert built.obj.find_enclosing(va.va_start) is None
                assert va.list_next is None, "an unlinked block must be on no list"
            built.obj.check()

        _run(check, disjoint_blocks(), st.lists(st.booleans(), max_size=24))

    def test_propagate_after_bounds_change(self, make: Any) -> None:
        """A block shrunk or grown in place (``va_clip`` style) is found with its new bounds."""

        def check(blocks: list[tuple[int, int]], pick: int, cut_low: int, cut_high: int) -> None:
            built, vas = self._filled(make, blocks, seed=pick)
            va = vas[pick % len(vas)]
            pages = (va.va_end - va.va_start) // P
            lo = min(cut_low, pages - 1)
            hi = min(cut_high, pages - 1 - lo)
            va.va_start += lo * P
            va.va_end -= hi * P
            built.obj.propagate(va)
            built.obj.check()
            want = [(v.va_start, v.va_end) for v in vas]
            assert spans(built.obj) == want
            assert built.obj.find_enclosing(va.va_start) is va
            size = va.va_end - va.va_start
            fits = [b for b in want if is_within_this_va(b, size, P, BASE)]
            got = built.obj.find_vmap_lowest_match(size, P, BASE, False)
            assert (got.va_start, got.va_end) == fits[0]
            # grow it back to its old end: the search sees the larger block
            va.va_end += hi * P
            built.obj.propagate(va)
            built.obj.check()
            assert built.obj.find_enclosing(va.va_end - 1) is va

        _run(
            check,
            disjoint_blocks(min_n=1, touching=False),
            st.integers(0, 2**16),
            st.integers(0, 8),
            st.integers(0, 8),
        )

    def test_lowest_match_exact(self, make: Any) -> None:
        """Without ``adjust_search_size``: the lowest block ``is_within_this_va`` accepts."""

        def check(blocks: list[tuple[int, int]], reqs: list[tuple[int, int, int]]) -> None:
            built, _ = self._filled(make, blocks)
            for pages, align_shift, vstart_pages in reqs:
                size, align = pages * P, P << align_shift
                vstart = BASE + vstart_pages * P
                fits = [b for b in blocks if is_within_this_va(b, size, align, vstart)]
                got = built.obj.find_vmap_lowest_match(size, align, vstart, False)
                got_t = None if got is None else (got.va_start, got.va_end)
                assert got_t == (fits[0] if fits else None), (
                    f"find_vmap_lowest_match({size:#x}, {align:#x}, {vstart:#x}, False)"
                )
            assert built.log == []

        req = st.tuples(st.integers(1, 70), st.integers(0, 4), st.integers(0, 2000))
        _run(check, disjoint_blocks(), st.lists(req, min_size=1, max_size=12))

    def test_lowest_match_adjusted_bounds(self, make: Any) -> None:
        """With ``adjust_search_size``: a fitting block at or below the lowest accepted
        block of ``size + align - 1`` bytes; None only if there is none."""

        def check(blocks: list[tuple[int, int]], reqs: list[tuple[int, int, int]]) -> None:
            built, _ = self._filled(make, blocks)
            for pages, align_shift, vstart_pages in reqs:
                size, align = pages * P, P << align_shift
                vstart = BASE + vstart_pages * P
                length = size + align - 1
                limit = next(
                    (
                        b
                        for b in blocks
                        if b[1] - b[0] >= length and is_within_this_va(b, size, align, vstart)
                    ),
                    None,
                )
                got = built.obj.find_vmap_lowest_match(size, align, vstart, True)
                call = f"find_vmap_lowest_match({size:#x}, {align:#x}, {vstart:#x}, True)"
                if got is None:
                    assert limit is None, f"{call}: None, but {limit} fits"
                    continue
                g = (got.va_start, got.va_end)
                assert g in blocks, f"{call}: returned {g}, not a held block"
                assert is_within_this_va(g, size, align, vstart), f"{call}: {g} does not fit"
                assert limit is None or g[0] <= limit[0], f"{call}: {g} is above {limit}"

        req = st.tuples(st.integers(1, 40), st.integers(1, 5), st.integers(0, 2000))
        _run(check, disjoint_blocks(), st.lists(req, min_size=1, max_size=12))

    def test_search_and_lookup_count_work(self, make: Any) -> None:
        built, _vas = self._filled(
            make, [(BASE + 2 * i * P, BASE + (2 * i + 1) * P) for i in range(32)]
        )
        for op in (
            lambda: built.obj.find_vmap_lowest_match(P, P, BASE + 40 * P, False),
            lambda: built.obj.find_enclosing(BASE + 31 * P),
        ):
            before = {k: built.counters[k] for k in WORK_COUNTERS}
            op()
            assert any(built.counters[k] > before[k] for k in WORK_COUNTERS), (
                f"a search moved none of the counters {WORK_COUNTERS}"
            )


# -- busy index ---------------------------------------------------------------------


@role_contract("busy")
class BusyIndexContract(RoleContract):
    """:class:`vmapsim.BusyIndex`: one vmap node's busy areas, found by address.

    A busy index may live inside an occupied index (the documented ``occupies =
    True`` marker, as ``busy=maple-occupied`` does): its factory finds the
    occupied index in ``ctx.shared["occupied"]``.  The contract builds one
    first, of :attr:`occupied_component` (default: the kit stage's own
    occupied component, or the first registered stage's that has one), so
    such an index is checked like any other, plus the marker's rule: a
    published area is the occupied index's entry over its range, an unlinked
    one leaves its range in use.
    """

    #: the occupied index to build first (default: see the class doc)
    occupied_component: ClassVar[str | None] = None

    @pytest.fixture
    def kit_stage(self, vmapsim_registry: Registry, vmapsim_component: str) -> Stage:
        if self.stage is not None:
            return vmapsim_registry.stage(self.stage)
        stages = vmapsim_registry.stages_with_role(self.role)
        if not stages:
            pytest.skip(f"no registered stage fills role {self.role!r}")
        name = kit_offer(vmapsim_registry, self.role, vmapsim_component).component.name
        own = [s for s in stages if s.components.get(self.role) == name]
        return (own or stages)[0]

    @pytest.fixture
    def make(self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage: Stage) -> Any:
        occ_spec = self.occupied_component or kit_stage.components.get("occupied")
        if occ_spec is None:
            with_occ = vmapsim_registry.stages_with_role("occupied")
            occ_spec = with_occ[0].components["occupied"] if with_occ else None

        def build(**kw: Any) -> Built:
            shared: dict[str, Any] = {}
            log: list[str] = kw.pop("log", [])
            if occ_spec is not None:
                occ = make_component(
                    vmapsim_registry, "occupied", occ_spec, stage=kit_stage, shared=shared, log=log
                )
                shared["occupied"] = occ.obj
            built = make_component(
                vmapsim_registry,
                self.role,
                vmapsim_component,
                stage=kit_stage,
                shared=shared,
                log=log,
                **kw,
            )
            built.ctx.shared["kit.occupied"] = shared.get("occupied")  # type: ignore[union-attr]
            return built

        return build

    def test_occupies_marker(self, make: Any) -> None:
        """With ``occupies = True``: a published area is the occupied index's entry
        over its range; unlinking it leaves the range in use (the purge releases it)."""
        built = make(node_id=0)
        if not getattr(built.obj, "occupies", False):
            pytest.skip("this busy index does not live in an occupied index (no `occupies`)")
        occ = built.ctx.shared["kit.occupied"]  # type: ignore[union-attr]
        vas = areas([(BASE + 4 * i * P, BASE + (4 * i + 2) * P) for i in range(8)])
        for va in vas:
            assert built.obj.publish(va, True) == 0
        entries = {(s, e): entry for s, e, entry in occ}
        for va in vas:
            assert entries.get((va.va_start, va.va_end)) is va, (
                f"occupies: published {va!r} is not the occupied index's entry over its range"
            )
        built.obj.unlink(vas[0])
        assert occ.gap_enclosing(vas[0].va_start) is None, (
            "occupies: an unlinked busy area's range must stay in use until released"
        )
        assert built.obj.find(vas[0].va_start) is None
        occ.check()
        built.obj.check()

    def _filled(
        self, make: Any, blocks: list[tuple[int, int]], seed: int = 0
    ) -> tuple[Built, list[VmapArea]]:
        built = make(node_id=0)
        vas = areas(blocks)
        order = list(vas)
        random.Random(seed).shuffle(order)
        for va in order:
            assert built.obj.insert(va) is True, f"insert({va!r}) into a disjoint set refused"
        return built, vas

    def test_empty(self, make: Any) -> None:
        b = make(node_id=0).obj
        assert len(b) == 0 and list(b) == []
        assert b.find(BASE) is None and b.find_unlink(BASE) is None
        b.check()

    def test_insert_and_find(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], seed: int) -> None:
            built, vas = self._filled(make, blocks, seed)
            b = built.obj
            assert spans(b) == blocks and len(b) == len(blocks)
            for i, va in enumerate(vas):
                assert b.find(va.va_start) is va
                assert b.find(va.va_end - 1) is va
                if i + 1 == len(vas) or vas[i + 1].va_start != va.va_end:
                    assert b.find(va.va_end) is None
            b.check()
            assert built.log == []

        _run(check, disjoint_blocks(), st.integers(0, 2**16))

    def test_overlapping_insert_is_refused_and_warned(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], pick: int, shift: int, length: int) -> None:
            built, _ = self._filled(make, blocks)
            new = overlapping(blocks[pick % len(blocks)], shift, length)
            assert built.obj.insert(VmapArea(*new)) is False
            assert_overlap_warned(built.log, new, blocks)
            assert spans(built.obj) == blocks
            built.obj.check()

        _run(
            check,
            disjoint_blocks(min_n=1),
            st.integers(0, 2**16),
            st.integers(-8, 63),
            st.integers(1, 80),
        )

    def test_publish(self, make: Any) -> None:
        """``publish``: 0 and inserted; ``-EEXIST`` with the overlap warning, unchanged."""
        import errno

        def check(blocks: list[tuple[int, int]], pick: int, length: int) -> None:
            built = make(node_id=0)
            for va in areas(blocks):
                assert built.obj.publish(va, True) == 0
            assert spans(built.obj) == blocks
            target = blocks[pick % len(blocks)]
            new = overlapping(target, 0, length)
            assert built.obj.publish(VmapArea(*new), True) == -errno.EEXIST
            assert_overlap_warned(built.log, new, blocks)
            assert spans(built.obj) == blocks
            built.obj.check()

        _run(check, disjoint_blocks(min_n=1), st.integers(0, 2**16), st.integers(1, 80))

    def test_publish_enomem_changes_nothing(self, make: Any) -> None:
        """``publish(va, can_block=False)`` when its nodes cannot be had: ``-ENOMEM``
        and nothing changed (failslab fails every non-blocking request here)."""
        import errno

        def check(blocks: list[tuple[int, int]], new: list[tuple[int, int]]) -> None:
            built, _vas = self._filled(make, blocks)
            occ = built.ctx.shared.get("kit.occupied")  # type: ignore[union-attr]

            def state() -> tuple[Any, ...]:
                return (spans(built.obj), len(built.obj), None if occ is None else list(occ))

            built.ctx.faults.configure(FailslabConfig(probability=100))  # type: ignore[union-attr]
            held = list(blocks)
            for s, e in new:
                if any(s < y and x < e for x, y in held):
                    continue
                before = state()
                got = built.obj.publish(VmapArea(s, e), False)
                assert got in (0, -errno.ENOMEM), f"publish({s:#x}-{e:#x}, False) returned {got}"
                if got == -errno.ENOMEM:
                    assert state() == before, (
                        f"publish({s:#x}-{e:#x}) returned -ENOMEM but changed the index"
                    )
                    assert built.obj.find(s) is None
                else:
                    held.append((s, e))
                built.obj.check()
            built.ctx.faults.configure(FailslabConfig())  # type: ignore[union-attr]
            assert spans(built.obj) == sorted(held)

        fresh = st.tuples(st.integers(0, 3000), st.integers(1, 20)).map(
            lambda t: (BASE + t[0] * P, BASE + (t[0] + t[1]) * P)
        )
        _run(check, disjoint_blocks(touching=False), st.lists(fresh, min_size=1, max_size=12))

    def test_unlink_and_find_unlink(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], how: list[int], offset: int) -> None:
            built, vas = self._filled(make, blocks)
            kept = list(vas)
            for va, h in zip(vas, how, strict=False):
                if h == 1:
                    built.obj.unlink(va)
                elif h == 2:
                    addr = va.va_start + (offset % (va.va_end - va.va_start)) // P * P
                    assert built.obj.find_unlink(addr) is va
                else:
                    continue
                kept.remove(va)
                assert va.list_next is None, "an unlinked area must be on no list"
                assert built.obj.find(va.va_start) is None
            assert spans(built.obj) == spans(kept) and len(built.obj) == len(kept)
            assert built.obj.find_unlink(BASE - P) is None
            assert spans(built.obj) == spans(kept)
            built.obj.check()

        _run(
            check,
            disjoint_blocks(),
            st.lists(st.integers(0, 2), max_size=24),
            st.integers(0, 2**20),
        )


# -- occupied index ------------------------------------------------------------------


def complement(used: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The gaps of ``[1, ULONG_MAX)`` around sorted, disjoint ``used`` ranges."""
    out, cursor = [], 1
    for s, e in used:
        if s > cursor:
            out.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < ULONG_MAX:
        out.append((cursor, ULONG_MAX))
    return out


def overask_fit(gaps: list[tuple[int, int]], size: int, align: int, vstart: int, vend: int) -> int:
    """The occupied search with the over-ask (``OccupiedIndex.find_lowest_fit``'s
    docstring): the lowest gap whose part in ``[vstart, vend)`` holds ``size +
    align - 1`` answers ``ALIGN(part start)``; otherwise the lowest aligned exact
    fit in the window; ``-ENOENT``."""
    import errno

    fallback = -errno.ENOENT
    for gs, ge in gaps:
        lo, hi = max(gs, vstart), min(ge, vend)
        if lo >= hi:
            continue
        nva = (lo + align - 1) // align * align
        if hi - lo >= size + align - 1:
            return nva
        if fallback < 0 and nva + size <= hi:
            fallback = nva
    return fallback


@role_contract("occupied")
class OccupiedIndexContract(RoleContract):
    """:class:`vmapsim.OccupiedIndex`: the in-use ranges, whose gaps are the free space."""

    def _filled(self, make: Any, used: list[tuple[int, int]], seed: int = 0) -> Built:
        built = make()
        order = list(used)
        random.Random(seed).shuffle(order)
        for s, e in order:
            assert built.obj.occupy(s, e, True) == 0, f"occupy({s:#x}, {e:#x}) refused"
        return built

    def test_fresh_index_is_one_gap(self, make: Any) -> None:
        o = make().obj
        assert list(o) == [] and list(o.gaps()) == [(1, ULONG_MAX)]
        assert o.gap_enclosing(BASE) == (1, ULONG_MAX)
        o.check()

    def test_occupy_and_gaps(self, make: Any) -> None:
        def check(used: list[tuple[int, int]], seed: int) -> None:
            built = self._filled(make, used, seed)
            o = built.obj
            assert [(s, e) for s, e, _ in o] == merged_or_same(used)
            assert all(entry is RESERVED for _, _, entry in o)
            gaps = complement(used)
            assert list(o.gaps()) == gaps
            for s, e in gaps:
                assert o.gap_enclosing(s) == (s, e) and o.gap_enclosing(e - 1) == (s, e)
            for s, _e in used:
                assert o.gap_enclosing(s) is None
            o.check()
            assert built.log == []

        _run(check, disjoint_blocks(touching=False), st.integers(0, 2**16))

    def test_overlapping_occupy_is_refused_and_warned(self, make: Any) -> None:
        import errno

        def check(used: list[tuple[int, int]], pick: int, shift: int, length: int) -> None:
            built = self._filled(make, used)
            new = overlapping(used[pick % len(used)], shift, length)
            assert built.obj.occupy(*new, True) == -errno.EEXIST
            assert_overlap_warned(built.log, new, used)
            assert list(built.obj.gaps()) == complement(used)
            built.obj.check()

        _run(
            check,
            disjoint_blocks(min_n=1, touching=False),
            st.integers(0, 2**16),
            st.integers(-8, 63),
            st.integers(1, 80),
        )

    def test_release(self, make: Any) -> None:
        def check(used: list[tuple[int, int]], drop: list[bool]) -> None:
            built = self._filled(make, used)
            gone = [u for u, d in zip(used, drop, strict=False) if d]
            for s, e in gone:
                built.obj.release(s, e)
            kept = [u for u in used if u not in gone]
            assert list(built.obj.gaps()) == complement(kept)
            built.obj.check()

        _run(check, disjoint_blocks(touching=False), st.lists(st.booleans(), max_size=24))

    def test_lowest_fit_exact(self, make: Any) -> None:
        """Without over-ask: the lowest ``nva >= vstart`` whose range fits one gap and ``vend``."""
        import errno

        def check(used: list[tuple[int, int]], reqs: list[tuple[int, int, int, int]]) -> None:
            built = self._filled(make, used)
            gaps = complement(used)
            for pages, align, vstart_pages, span in reqs:
                size = pages * P
                vstart = BASE + vstart_pages * P
                vend = vstart + span * P
                want = -errno.ENOENT
                for gs, ge in gaps:
                    nva = (max(gs, vstart) + align - 1) // align * align
                    if nva + size <= ge and nva + size <= vend:
                        want = nva
                        break
                got = built.obj.find_lowest_fit(size, align, vstart, vend, False)
                assert got == want or (want < 0 and got < 0), (
                    f"find_lowest_fit({size:#x}, {align}, {vstart:#x}, {vend:#x}, False): "
                    f"{got} != {want}"
                )

        req = st.tuples(
            st.integers(1, 40),
            st.sampled_from([1, P, 2 * P, 8 * P]),
            st.integers(0, 400),
            st.integers(1, 3000),
        )
        _run(check, disjoint_blocks(touching=False), st.lists(req, min_size=1, max_size=10))

    def test_lowest_fit_overask(self, make: Any) -> None:
        """With ``adjust_search_size`` (align above PAGE_SIZE): the lowest gap whose part
        in ``[vstart, vend)`` holds ``size + align - 1`` gives ``ALIGN(part start)``;
        if none does, the exact search's answer."""

        def check(used: list[tuple[int, int]], reqs: list[tuple[int, int, int, int]]) -> None:
            built = self._filled(make, used)
            gaps = complement(used)
            for pages, align_shift, vstart_pages, span in reqs:
                size, align = pages * P, P << align_shift
                vstart = BASE + vstart_pages * P
                vend = vstart + span * P
                want = overask_fit(gaps, size, align, vstart, vend)
                got = built.obj.find_lowest_fit(size, align, vstart, vend, True)
                assert got == want or (want < 0 and got < 0), (
                    f"find_lowest_fit({size:#x}, {align:#x}, {vstart:#x}, {vend:#x}, True) "
                    f"returned {got:#x} where the over-ask gives {want:#x}; gaps near: "
                    f"{[g for g in gaps if g[1] > vstart and g[0] < vend][:4]}"
                )
            assert list(built.obj.gaps()) == gaps, "a search changed the index"

        req = st.tuples(
            st.integers(1, 40), st.integers(1, 6), st.integers(0, 400), st.integers(1, 3000)
        )
        _run(check, disjoint_blocks(touching=False), st.lists(req, min_size=1, max_size=10))

    def test_prev_gap(self, make: Any) -> None:
        """``prev_gap(below)``: the highest gap starting below ``below``, its end
        clipped to ``below`` (``mas_empty_area_rev`` order)."""

        def check(used: list[tuple[int, int]], probes: list[int]) -> None:
            built = self._filled(make, used)
            gaps = complement(used)
            edges = [BASE] + [x for u in used for x in u]
            for k in probes:
                below = edges[k % len(edges)] + (k // len(edges) % 3 - 1) * P
                below = max(below, 1)
                want = None
                for s, e in gaps:
                    if s < below:
                        want = (s, min(e, below))
                got = built.obj.prev_gap(below)
                assert got == want, f"prev_gap({below:#x}) returned {got}, expected {want}"

        _run(
            check,
            disjoint_blocks(touching=False),
            st.lists(st.integers(0, 2**16), min_size=1, max_size=16),
        )

    def test_partial_release(self, make: Any) -> None:
        """Releasing part of an in-use range leaves the rest in use (the purge gives
        back a lazy area cut from a bigger reservation, pcpu frees part of a chunk)."""

        def check(used: list[tuple[int, int]], cuts: list[tuple[int, int, int]]) -> None:
            built = self._filled(make, used)
            held = sorted(used)
            for pick, lo, hi in cuts:
                if not held:
                    break
                s, e = held.pop(pick % len(held))
                pages = (e - s) // P
                a = s + (lo % pages) * P
                b = min(a + (1 + hi % pages) * P, e)
                built.obj.release(a, b)
                held += [r for r in ((s, a), (b, e)) if r[0] < r[1]]
                held.sort()
                got = [(x, y) for x, y, _ in built.obj]
                assert got == held, (
                    f"after release({a:#x}, {b:#x}) of part of {s:#x}-{e:#x} the in-use "
                    f"ranges are {got[:6]}..., expected {held[:6]}..."
                )
                assert all(entry is RESERVED for _, _, entry in built.obj), (
                    "the parts left after a partial release must hold RESERVED"
                )
                assert list(built.obj.gaps()) == complement(held), "stale gaps after release"
                for x, y in held:
                    assert (
                        built.obj.gap_enclosing(x) is None
                        and built.obj.gap_enclosing(y - 1) is None
                    )
                built.obj.check()

        cut = st.tuples(st.integers(0, 2**16), st.integers(0, 2**16), st.integers(0, 2**16))
        _run(check, disjoint_blocks(min_n=1, touching=False), st.lists(cut, min_size=1, max_size=8))

    def test_enomem_changes_nothing(self, make: Any) -> None:
        """``occupy(..., can_block=False)`` when its nodes cannot be had: ``-ENOMEM``
        and nothing changed (failslab fails every non-blocking request here)."""
        import errno

        def check(used: list[tuple[int, int]], new: list[tuple[int, int]]) -> None:
            built = self._filled(make, used)
            built.ctx.faults.configure(FailslabConfig(probability=100))  # type: ignore[union-attr]
            held = list(used)
            for s, e in new:
                if any(s < y and x < e for x, y in held):
                    continue
                before = ([(x, y) for x, y, _ in built.obj], list(built.obj.gaps()))
                got = built.obj.occupy(s, e, False)
                assert got in (0, -errno.ENOMEM), f"occupy({s:#x}, {e:#x}, False) returned {got}"
                if got == -errno.ENOMEM:
                    after = ([(x, y) for x, y, _ in built.obj], list(built.obj.gaps()))
                    assert after == before, (
                        f"occupy({s:#x}, {e:#x}) returned -ENOMEM but changed the index"
                    )
                else:
                    held.append((s, e))
                built.obj.check()
            built.ctx.faults.configure(FailslabConfig())  # type: ignore[union-attr]
            assert [(x, y) for x, y, _ in built.obj] == sorted(held)

        fresh = st.tuples(st.integers(0, 3000), st.integers(1, 20)).map(
            lambda t: (BASE + t[0] * P, BASE + (t[0] + t[1]) * P)
        )
        _run(
            check,
            disjoint_blocks(touching=False),
            st.lists(fresh, min_size=1, max_size=12),
        )

    def test_search_and_lookup_count_work(self, make: Any) -> None:
        used = [(BASE + 2 * i * P, BASE + (2 * i + 1) * P) for i in range(32)]
        built = self._filled(make, used)
        for what, op in (
            (
                "find_lowest_fit",
                lambda: built.obj.find_lowest_fit(P, P, BASE, BASE + 80 * P, False),
            ),
            (
                "find_lowest_fit (over-ask)",
                lambda: built.obj.find_lowest_fit(2 * P, 4 * P, BASE, BASE + 200 * P, True),
            ),
            ("gap_enclosing", lambda: built.obj.gap_enclosing(BASE + 31 * P)),
            ("prev_gap", lambda: built.obj.prev_gap(BASE + 40 * P)),
        ):
            before = {k: built.counters[k] for k in WORK_COUNTERS}
            op()
            assert any(built.counters[k] > before[k] for k in WORK_COUNTERS), (
                f"{what} on a non-empty occupied index moved none of the counters {WORK_COUNTERS}"
            )


# -- lazy queue ---------------------------------------------------------------------


@role_contract("lazy")
class LazyQueueContract(RoleContract):
    """:class:`vmapsim.LazyQueue`: one vmap node's lazily freed areas, drained whole."""

    def test_empty(self, make: Any) -> None:
        q = make(node_id=0).obj
        assert len(q) == 0 and list(q) == [] and q.detach_all() == []
        q.check()

    def test_add_and_detach_all(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], seed: int) -> None:
            built = make(node_id=0)
            q = built.obj
            vas = areas(blocks)
            order = list(vas)
            random.Random(seed).shuffle(order)
            for va in order:
                assert q.add(va) is True
            assert spans(q) == blocks and len(q) == len(blocks)
            q.check()
            out = q.detach_all()
            # the queue's own order (address order for an index, queued order
            # for a bare list_head): every area once, none left behind
            assert sorted(id(v) for v in out) == sorted(id(v) for v in vas), (
                "detach_all: not every queued area exactly once"
            )
            assert len(q) == 0 and list(q) == []
            q.check()
            assert all(va.list_next is None for va in out), "detached areas must be on no list"
            again = make(node_id=0).obj
            for va in out:
                assert again.add(va) is True, "a detached area could not be queued again"
            assert spans(again) == blocks
            assert built.log == []

        _run(check, disjoint_blocks(), st.integers(0, 2**16))

    def test_overlapping_add_is_refused_and_warned(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], pick: int, length: int) -> None:
            built = make(node_id=0)
            for va in areas(blocks):
                built.obj.add(va)
            target = blocks[pick % len(blocks)]
            new = (target[0], target[0] + length * P)
            if built.obj.add(VmapArea(*new)) is True:
                # a queue without an index cannot tell an overlap (LazyQueue.add):
                # it must then have queued the area, and say nothing
                assert len(built.obj) == len(blocks) + 1 and built.log == []
                return
            assert_overlap_warned(built.log, new, blocks)
            assert spans(built.obj) == blocks

        _run(check, disjoint_blocks(min_n=1), st.integers(0, 2**16), st.integers(1, 80))


# -- coalescer ----------------------------------------------------------------------


@role_contract("coalesce")
class CoalescerContract(RoleContract):
    """:class:`vmapsim.Coalescer` over a free index (:attr:`free_component`).

    ``free_component`` defaults to the stage's own free index.
    """

    free_component: ClassVar[str | None] = None

    @pytest.fixture
    def make(self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage: Stage) -> Any:
        free_spec = self.free_component or kit_stage.components.get("free")
        if free_spec is None:
            pytest.skip(f"stage {kit_stage.key} has no free index to coalesce into")

        def build(**_kw: Any) -> Built:
            shared: dict[str, Any] = {}
            log: list[str] = []
            free = make_component(
                vmapsim_registry, "free", free_spec, stage=kit_stage, shared=shared, log=log
            )
            shared["free"] = free.obj
            built = make_component(
                vmapsim_registry,
                "coalesce",
                vmapsim_component,
                stage=kit_stage,
                shared=shared,
                counters=free.counters,
                log=log,
            )
            built.ctx.shared["kit.free"] = free.obj  # type: ignore[union-attr]
            return built

        return build

    def test_release_merges_like_the_kernel(self, make: Any) -> None:
        """Releasing disjoint ranges in any order leaves the union, touching ranges joined;
        every merged-away area is handed back in ``dropped``."""

        def check(blocks: list[tuple[int, int]], held: list[bool], seed: int) -> None:
            built = make()
            free = built.ctx.shared["kit.free"]  # type: ignore[union-attr]
            c = built.obj
            start_set = [b for b, h in zip(blocks, held, strict=False) if h]
            for s, e in merged(start_set):
                assert free.insert(VmapArea(s, e))
            released = [b for b in blocks if b not in start_set]
            random.Random(seed).shuffle(released)
            now = merged(start_set)
            for s, e in released:
                va = VmapArea(s, e)
                got = c.merge_or_add(va)
                assert got is not None, f"merge_or_add({s:#x}-{e:#x}) failed without overlap"
                now = merged([*now, (s, e)])
                assert (got.va_start, got.va_end) in now, "the returned block is not the merged one"
                assert got.va_start <= s and got.va_end >= e
                assert spans(free) == now
                free.check()
            dropped = list(getattr(c, "dropped", []))
            assert len(dropped) == len(released) + len(merged(start_set)) - len(now), (
                "every area merged away must be in `dropped`"
            )
            assert not {id(v) for v in dropped} & {id(v) for v in free}
            assert built.log == []

        _run(check, disjoint_blocks(), st.lists(st.booleans(), max_size=24), st.integers(0, 2**16))

    def test_overlapping_release_is_refused_and_warned(self, make: Any) -> None:
        def check(blocks: list[tuple[int, int]], pick: int, length: int) -> None:
            built = make()
            free = built.ctx.shared["kit.free"]  # type: ignore[union-attr]
            held = merged(blocks)
            for s, e in held:
                free.insert(VmapArea(s, e))
            target = held[pick % len(held)]
            new = (target[0], target[0] + length * P)
            assert built.obj.merge_or_add(VmapArea(*new)) is None
            assert_overlap_warned(built.log, new, held)
            assert spans(free) == held
            assert not getattr(built.obj, "dropped", [])
            free.check()

        _run(check, disjoint_blocks(min_n=1), st.integers(0, 2**16), st.integers(1, 80))


# -- overlay ------------------------------------------------------------------------


@role_contract("overlay")
class OverlayContract(RoleContract):
    """:class:`vmapsim.Overlay`, inside a full allocator of a stage that has one."""

    @pytest.fixture
    def allocator(
        self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage: Stage
    ) -> Any:
        from vmapsim.framework.api import build

        return build(
            kit_stage.key,
            components={"overlay": vmapsim_component},
            debug=True,
            registry=vmapsim_registry,
        )

    def test_fresh_overlay_is_consistent(self, allocator: Any) -> None:
        allocator.overlay.check()
        allocator.check_invariants()

    def test_lookup_of_a_foreign_address(self, allocator: Any) -> None:
        addr = allocator.vmalloc(P)
        assert allocator.overlay.lookup(BASE - 16 * P) is None
        assert allocator.find_vmap_area(addr) is not None
        allocator.vfree(addr)
        allocator.check_invariants()

    def test_held_ranges_are_disjoint(self, allocator: Any) -> None:
        addrs = [allocator.vmalloc((1 + i % 3) * P, cpu=0) for i in range(32)]
        ranges = sorted((va.va_start, va.va_end) for va in allocator.overlay)
        for (_, e), (s, _) in itertools.pairwise(ranges):
            if s < e:
                raise InvariantError(f"overlay ranges overlap at {s:#x}")
        for a in addrs:
            allocator.vfree(a)
        allocator.check_invariants()
