"""Stage 0's flow with its busy/lazy trees as rb-trees, then as maple trees.

Same workload, same seed: the allocation trace must be identical (the index
is an implementation detail of the kernel's semantics); the cost-model
counters show what each structure costs.

    python examples/busy_index_costs.py [--nr-ops 20000] [--nr-cpus 4] [--seed 0]
"""

from __future__ import annotations

import argparse

import vmapsim
from vmapsim.framework.workloads import mixed

SHOWN = ("walks", "nodes_visited", "comparisons", "cache_lines", "rotations", "node_allocs")


def run(components: dict[str, str], nr_ops: int, nr_cpus: int, seed: int) -> tuple[list, dict]:
    a = vmapsim.build(0, nr_cpus=nr_cpus, seed=seed, components=components)
    trace: list[int | None] = []
    vmalloc = a.vmalloc

    def traced(size: int, *, cpu: int = 0) -> int | None:
        addr = vmalloc(size, cpu=cpu)
        trace.append(addr)
        return addr

    a.vmalloc = traced  # type: ignore[method-assign]
    report = mixed(a, seed=seed, nr_ops=nr_ops)
    a.check_invariants()
    ops = report.ops["vmalloc"] + report.ops["vmalloc_node"] + report.ops["vfree"]
    return trace, {k: a.metrics[k] / ops for k in SHOWN}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nr-ops", type=int, default=20000)
    ap.add_argument("--nr-cpus", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rb_trace, rb = run({}, args.nr_ops, args.nr_cpus, args.seed)
    mt_trace, mt = run({"busy": "maple", "lazy": "maple"}, args.nr_ops, args.nr_cpus, args.seed)
    assert rb_trace == mt_trace, "the index changed the allocation trace"
    print(f"same trace of {len(rb_trace)} vmalloc() results; per operation:")
    print(f"{'counter':<16} {'rb-tree':>10} {'maple':>10}")
    for k in SHOWN:
        print(f"{k:<16} {rb[k]:>10.2f} {mt[k]:>10.2f}")


if __name__ == "__main__":
    main()
