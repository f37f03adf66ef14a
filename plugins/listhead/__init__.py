"""vmapsim_listhead: the lazy-purge queue as a plain ``list_head`` (stage 8 on).

``lazy=listhead`` keeps one vmap node's lazily freed areas on a circular
doubly linked list threaded through the areas' own ``list_prev`` /
``list_next`` fields, as the kernel's ``struct list_head`` is embedded in
``struct vmap_area``: O(1) append, the drain splices the whole list, no
address-keyed index.  See docs/stages.md, "Stages 8-12 in detail".
"""

from __future__ import annotations

from .queue import ListHeadLazyQueue

__all__ = ["ListHeadLazyQueue"]
