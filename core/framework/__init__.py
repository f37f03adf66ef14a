"""The framework: how a stage is assembled out of components that plugins provide.

The contracts the kernel model calls through:

- ``roles``: the roles' protocols (free index, occupied index, busy index,
  lazy queue, coalescer, overlay);
- ``descriptors``: :class:`Component`, :class:`Stage`, :class:`Workload`,
  :class:`ComponentContext`;
- ``hookspecs``: the pluggy hook specifications and ``hookimpl``;
- ``mirror``: shadow pairs (``"A+B"``) for the stages that keep two indexes.

The assembly, above the kernel model:

- ``registry``: entry-point loading with a boundary per plugin;
- ``series``: the stage recipes; ``builtin``: vmapsim's own registrations;
- ``workloads``: the built-in workloads;
- ``api``: :func:`build`, an allocator for a stage.

The kernel model imports the contracts, never the assembly.
"""
