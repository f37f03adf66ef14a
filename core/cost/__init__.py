"""The cost model: counters and what turns work into numbers.

- ``counters``: :class:`Counters`, the deterministic work counters every
  component and the flow add to (docs/metrics.md);
- ``cachemodel``: which 64-byte lines an access to a struct or a maple node
  touches (docs/cost-model.md).
"""
