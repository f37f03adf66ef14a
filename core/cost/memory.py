"""Modelled addresses of the kernel objects the cost model touches.

Every object whose cache lines the model charges has an address here, so
that "lines touched" can be counted as distinct lines and a cache model can
see the same line again (``docs/cost-model.md``, "Addresses"):

* **slab objects** (``struct vmap_area`` from ``vmap_area_cachep``, maple
  nodes from ``maple_node_cache``): :class:`SlabCache` hands out objects
  from 4 KiB slab pages of its own, packed from the page start (SLUB without
  debug padding); a freed object is the next one handed out (last freed,
  first reused: the per-CPU freelist of ``slab_alloc_node`` /
  ``do_slab_free``).  Pages come from :meth:`AddressSpace.page` and are
  never given back (a slab that empties keeps its page in the model).
* **static and per-CPU data** (``free_vmap_area_lock``, the free tree's root
  and list head, ``vmap_lazy_nr``, the ``vmap_nodes`` array, per-CPU
  variables): :meth:`AddressSpace.static` / :meth:`AddressSpace.percpu`
  place each object at the next address with the object's alignment, in the
  order the allocator declares them.  The linker's real placement is not
  known to the model; objects declared one after another share a line
  exactly when they fit in it.

Addresses are plain ints in a model address space (no relation to the
vmalloc range the allocator manages); they depend only on the order of
declarations and allocations, so they are deterministic for a seed.
"""

from __future__ import annotations

from vmapsim.kernel.constants import PAGE_SIZE

__all__ = ["AddressSpace", "SlabCache"]

#: where the model's direct-map pages (slab pages) start
_PAGES_BASE = 1 << 40
#: where the model's static data (.data/.bss) starts
_STATIC_BASE = 1 << 32
#: where CPU 0's per-CPU area starts; CPU ``n``'s is ``n`` strides above
_PERCPU_BASE = 1 << 36
_PERCPU_STRIDE = 1 << 24


class SlabCache:
    """``kmem_cache`` of fixed-size objects with modelled addresses.

    ``alloc()`` returns the object's address; ``free(addr)`` puts it on the
    freelist.  ``size`` is the object size; objects never straddle a page.
    """

    __slots__ = ("_freelist", "_fresh", "_page", "live", "name", "per_slab", "size", "space")

    def __init__(self, space: AddressSpace, name: str, size: int) -> None:
        if size <= 0 or size > PAGE_SIZE:
            raise ValueError(f"SlabCache {name!r}: size must be in 1..{PAGE_SIZE}, got {size}")
        self.space = space
        self.name = name
        self.size = size
        self.per_slab = PAGE_SIZE // size
        self._freelist: list[int] = []
        self._page = 0
        self._fresh = self.per_slab  # no page yet
        self.live = 0

    def alloc(self) -> int:
        """``kmem_cache_alloc()``: the address of an object (freelist first)."""
        self.live += 1
        if self._freelist:
            return self._freelist.pop()
        pos = self._fresh
        if pos >= self.per_slab:
            self._page = self.space.page()
            pos = 0
        self._fresh = pos + 1
        return self._page + pos * self.size

    def free(self, addr: int) -> None:
        """``kmem_cache_free()``: ``addr`` is the next object handed out."""
        self.live -= 1
        self._freelist.append(addr)

    def position(self, addr: int) -> int:
        """The object's index in its slab page."""
        return (addr % PAGE_SIZE) // self.size


class AddressSpace:
    """The model's kernel memory: pages, static data, per-CPU data, slab caches."""

    __slots__ = ("_next_page", "_percpu", "_static", "caches")

    def __init__(self) -> None:
        self._next_page = _PAGES_BASE
        self._static = _STATIC_BASE
        self._percpu = 0
        #: name -> :class:`SlabCache`
        self.caches: dict[str, SlabCache] = {}

    def page(self) -> int:
        """A fresh page of the direct map (``alloc_pages`` for a new slab)."""
        addr = self._next_page
        self._next_page = addr + PAGE_SIZE
        return addr

    def pages(self, size: int) -> int:
        """Fresh contiguous pages for ``size`` bytes (``kvmalloc`` of a large
        object, a page allocation): their first address."""
        n = -(-size // PAGE_SIZE)
        addr = self._next_page
        self._next_page = addr + n * PAGE_SIZE
        return addr

    def cache(self, name: str, size: int) -> SlabCache:
        """The slab cache ``name`` (made on first use with object ``size``)."""
        c = self.caches.get(name)
        if c is None:
            c = self.caches[name] = SlabCache(self, name, size)
        elif c.size != size:
            raise ValueError(f"slab cache {name!r} has objects of {c.size} B, not {size}")
        return c

    def static(self, size: int, align: int = 8) -> int:
        """Place a static object of ``size`` bytes aligned to ``align``."""
        addr = -(-self._static // align) * align
        self._static = addr + size
        return addr

    def percpu(self, size: int, align: int = 8) -> int:
        """Place a per-CPU variable; CPU ``n``'s copy is at ``addr + n * stride``
        (:meth:`this_cpu`)."""
        off = -(-self._percpu // align) * align
        self._percpu = off + size
        return _PERCPU_BASE + off

    @staticmethod
    def this_cpu(addr: int, cpu: int) -> int:
        """``per_cpu_ptr(addr, cpu)``: CPU ``cpu``'s copy of a per-CPU variable."""
        return addr + cpu * _PERCPU_STRIDE
