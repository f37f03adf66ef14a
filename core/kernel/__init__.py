"""The kernel model: the state and flow of mm/vmalloc.c, in the kernel's names.

One module per part of mm/vmalloc.c (and of what it calls):

- ``allocator``: :class:`VmapAllocator`, the file's global state (the free
  index and lock, the vmap nodes, ``vmap_lazy_nr``, the per-CPU preload
  nodes) and the components a stage binds into its roles; ``vmalloc_init()``;
- ``alloc``: ``alloc_vmap_area()``, ``__alloc_vmap_area()``, ``va_clip()``;
- ``purge``: ``free_vmap_area_noflush()``, ``__purge_vmap_area_lazy()``,
  the shrinker, ``vm_unmap_aliases()``;
- ``vmalloc``: ``__vmalloc_node_range()``, ``vfree()``, ``find_vmap_area()``;
- ``vmap_block``: ``vm_map_ram()`` and the per-CPU vmap blocks;
- ``pcpu``: ``pcpu_get_vm_areas()``; ``percpu``: mm/percpu.c above it;
- ``rcu``: ``kvfree_rcu()`` and grace periods; ``vrealloc``: ``vrealloc()``;
- ``vmap_node``: ``struct vmap_node`` and its pools; ``area``: ``struct
  vmap_area`` / ``struct vm_struct``; ``slab``: ``vmap_area_cachep``;
- ``coalesce``: ``merge_or_add_vmap_area()`` over any free index;
- ``gfp``, ``constants``, ``layout``: GFP flags, the arches' address-space
  constants, struct layouts computed as pahole reports them.

mm/vmalloc.c is one file whose functions share its globals; the model splits
it into mixins of :class:`~vmapsim.kernel.allocator.VmapAllocator`.  That is
the one circle of this package, and it is kept to type hints: each mixin
names ``VmapAllocator`` under ``TYPE_CHECKING`` only, and ``allocator``
imports the mixins.  The flow calls its roles' components through the
protocols of :mod:`vmapsim.framework.roles`; it never imports a plugin, a
tool or the framework's assembly (tests/test_layout.py checks it).
"""
