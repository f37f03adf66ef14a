"""The cache and coherence model (vmapsim.cost.cache) against hand-worked sequences.

Every expectation below is worked out by hand from the rules in the module
docstring (set = line % sets, LRU per set, private L2 inclusive of the L1d,
MESI: a miss on a line Modified elsewhere is a transfer, a write removes the
other copies), on caches small enough to follow: unless a test says
otherwise, L1d 2 sets x 2 ways, L2 2 sets x 4 ways, LLC 2 sets x 8 ways
(64-byte lines).
"""

from __future__ import annotations

import pytest

from vmapsim.cost.cache import CACHE_KEYS, CacheConfig, CacheModel

L = 64


def tiny(inclusive: bool = False, **kw: int) -> CacheConfig:
    cfg = {
        "l1d_size": 2 * 2 * L,
        "l1d_ways": 2,
        "l2_size": 2 * 4 * L,
        "l2_ways": 4,
        "llc_size": 2 * 8 * L,
        "llc_ways": 8,
    }
    cfg.update(kw)
    return CacheConfig(name="tiny", llc_inclusive=inclusive, **cfg)


def delta(m: CacheModel, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in m.snapshot().items() if v - before[k]}


def one(m: CacheModel, cpu: int, line: int, write: bool = False) -> dict[str, int]:
    b = m.snapshot()
    m.access(cpu, line, write)
    return delta(m, b)


@pytest.fixture(params=[False, True], ids=["victim-llc", "inclusive-llc"])
def model(request) -> CacheModel:
    return CacheModel(2, tiny(inclusive=request.param))


def test_snapshot_keys_and_reset(model):
    assert tuple(model.snapshot()) == CACHE_KEYS
    model.access(0, 1, True)
    model.access(1, 1, False)
    assert model.accesses == 2
    model.reset()
    assert model.snapshot() == dict.fromkeys(CACHE_KEYS, 0)
    assert model.holds(0, 1) == "" and not model.in_llc(1)
    assert one(model, 0, 1) == {"mem_misses": 1}


def test_hit_after_touch(model):
    assert one(model, 0, 5) == {"mem_misses": 1}
    assert one(model, 0, 5) == {"l1_hits": 1}
    assert one(model, 0, 5, write=True) == {"l1_hits": 1}
    assert model.state(0, 5) == "M"


def test_l1_lru_eviction_per_set_then_l2_hit(model):
    # lines 0, 2, 4 map to L1 set 0 (2 ways); line 1 to set 1 and never disturbs it
    for line in (0, 2, 1):
        assert one(model, 0, line) == {"mem_misses": 1}
    assert one(model, 0, 0) == {"l1_hits": 1}  # 0 becomes most recent: 2 is LRU of set 0
    assert one(model, 0, 4) == {"mem_misses": 1}  # evicts 2 from the L1d, not 0
    assert model.holds(0, 2) == "l2"
    assert model.holds(0, 0) == "l1d"
    assert model.holds(0, 1) == "l1d"
    assert one(model, 0, 2) == {"l2_hits": 1}  # L2 hit after the L1 eviction, refilled
    assert model.holds(0, 2) == "l1d"
    assert model.holds(0, 0) == "l2"  # 0 was the LRU of set 0 now


def test_capacity_eviction_from_l2_in_lru_order_then_llc_hit(model):
    # L2 set 0 holds 4 lines: 0, 2, 4, 6; the 5th (8) evicts the LRU, 0
    for line in (0, 2, 4, 6):
        model.access(0, line, False)
    model.access(0, 2, False)  # touch order now 0 (LRU), 4, 6, 2
    assert one(model, 0, 8) == {"mem_misses": 1}
    assert model.holds(0, 0) == ""  # gone from L2 and (inclusion) from the L1d
    assert model.holds(0, 4) != ""
    # victim mode: the L2 victim went into the LLC; inclusive: it was filled there
    assert model.in_llc(0)
    assert one(model, 0, 0) == {"llc_hits": 1}  # LLC hit after a private eviction
    assert model.holds(0, 4) == ""  # and 4, LRU then, made room for it


def test_victim_llc_is_filled_only_by_evictions():
    m = CacheModel(1, tiny(inclusive=False))
    m.access(0, 0, False)
    assert not m.in_llc(0)  # a memory fill goes to the private caches only
    for line in (2, 4, 6, 8):
        m.access(0, line, False)
    assert m.in_llc(0) and not m.in_llc(2)


def test_inclusive_llc_back_invalidates_private_copies():
    # LLC of 1 set x 2 ways, larger private caches: the LLC evicts first
    cfg = tiny(inclusive=True, llc_size=2 * L, llc_ways=2)
    m = CacheModel(2, cfg)
    m.access(0, 0, True)
    m.access(1, 1, False)
    assert m.in_llc(0) and m.in_llc(1)
    assert one(m, 0, 2) == {"mem_misses": 1}  # evicts 0 (LRU) from the LLC
    assert not m.in_llc(0)
    assert m.holds(0, 0) == "" and m.state(0, 0) == "I"  # back-invalidated, dirty data written back
    assert one(m, 0, 0) == {"mem_misses": 1}
    # no line stays in a private cache without being in the LLC
    for line in range(4):
        for cpu in (0, 1):
            if m.holds(cpu, line):
                assert m.in_llc(line)


def test_write_then_read_on_another_cpu_is_one_transfer(model):
    assert one(model, 0, 7, write=True) == {"mem_misses": 1}
    assert model.state(0, 7) == "M"
    assert one(model, 1, 7) == {"coherence_transfers": 1}
    assert model.state(0, 7) == "S" and model.state(1, 7) == "S"
    # both now read it locally, and a third read on CPU 1 is no transfer
    assert one(model, 0, 7) == {"l1_hits": 1}
    assert one(model, 1, 7) == {"l1_hits": 1}


def test_write_write_ping_pong(model):
    assert one(model, 0, 3, write=True) == {"mem_misses": 1}
    for _ in range(3):
        assert one(model, 1, 3, write=True) == {"coherence_transfers": 1, "invalidations": 1}
        assert model.state(1, 3) == "M" and model.state(0, 3) == "I"
        assert one(model, 0, 3, write=True) == {"coherence_transfers": 1, "invalidations": 1}
        assert model.state(0, 3) == "M" and model.state(1, 3) == "I"


def test_read_sharing_has_no_transfers(model):
    assert one(model, 0, 9) == {"mem_misses": 1}
    assert model.state(0, 9) == "E"
    assert one(model, 1, 9) == {"llc_hits": 1}  # clean elsewhere: forwarded, no transfer
    assert model.state(0, 9) == "S" and model.state(1, 9) == "S"
    for _ in range(5):
        assert one(model, 0, 9) == {"l1_hits": 1}
        assert one(model, 1, 9) == {"l1_hits": 1}
    assert model.coherence_transfers == 0 and model.invalidations == 0


def test_write_to_shared_line_invalidates_the_other_copies():
    m = CacheModel(4, tiny())
    for cpu in range(4):
        m.access(cpu, 11, False)
    # CPU 2 holds it Shared: its write hits its L1d and removes 3 copies
    assert one(m, 2, 11, write=True) == {"l1_hits": 1, "invalidations": 3}
    assert [m.state(c, 11) for c in range(4)] == ["I", "I", "M", "I"]
    # the next reader elsewhere needs the dirty line: a transfer
    assert one(m, 0, 11) == {"coherence_transfers": 1}
    # a write on a CPU that has no copy, with 2 clean holders: no transfer
    assert one(m, 3, 11, write=True) == {"llc_hits": 1, "invalidations": 2}
    # an exclusive clean line is written without telling anyone
    m.access(1, 40, False)
    assert one(m, 1, 40, write=True) == {"l1_hits": 1}


def test_outcomes_add_up_to_accesses_and_run_is_deterministic():
    def run() -> dict[str, int]:
        m = CacheModel(3, tiny())
        x = 12345
        for i in range(3000):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            m.access(i % 3, x % 40, bool(x & 0x100))
        assert m.accesses == 3000
        return m.snapshot()

    a = run()
    assert a == run()
    assert a["coherence_transfers"] and a["invalidations"] and a["mem_misses"]


def test_access_many_is_access_in_order():
    a, b = CacheModel(2, tiny()), CacheModel(2, tiny())
    lines = [0, 2, 4, 6, 8, 0]
    a.access_many(1, lines, True)
    for line in lines:
        b.access(1, line, True)
    assert a.snapshot() == b.snapshot()


def test_presets_are_the_documented_platforms():
    x86 = CacheConfig()
    assert (x86.l1d_size, x86.l1d_ways, x86.l2_size, x86.l2_ways) == (48 << 10, 12, 2 << 20, 16)
    assert x86.line_size == 64 and x86.sets("l1d") == 64 and x86.sets("l2") == 2048
    arm = CacheConfig.for_arch("arm64")
    assert (arm.l1d_size, arm.l1d_ways, arm.l2_size, arm.l2_ways) == (64 << 10, 4, 1 << 20, 8)
    assert CacheConfig.for_arch("x86_64") == x86


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l1d_size": 0}, "l1d_size: must be positive"),
        ({"l2_ways": -1}, "l2_ways: must be positive"),
        ({"line_size": 48}, "line_size: must be a power of two"),
        ({"llc_size": 1000}, "llc_size: 1000 is not a whole number of sets"),
        ({"l1d_ways": 1.5}, "l1d_ways: must be an int"),
        ({"llc_inclusive": 1}, "llc_inclusive: must be a bool"),
    ],
)
def test_bad_config_is_refused_naming_the_field(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        CacheConfig(**kwargs)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="nr_cpus: must be at least 1"):
        CacheModel(0)
    with pytest.raises(TypeError, match="config: must be a CacheConfig"):
        CacheModel(1, {"l1d_size": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="arch: must be"):
        CacheConfig.for_arch("riscv")
    with pytest.raises(ValueError, match="level: must be"):
        CacheConfig().sets("l3")
