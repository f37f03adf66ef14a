"""``vmapsim sweep``: stages x subtests x parameters x seeds, locally or on a Dask cluster.

One job per module:

- :mod:`.grid`: the grid (from options and a TOML file) and its expansion into cells;
- :mod:`.cells`: a cell, its key, the importable function that runs one, its table rows;
- :mod:`.executors`: ``serial``, ``processes`` and ``dask`` behind one interface;
- :mod:`.store`: the results folder (one file per finished cell, the tables);
- :mod:`.runner`: the run loop (what is left, keeping each outcome at once, Ctrl-C);
- :mod:`.progress`: what the user sees while it runs;
- :mod:`.command`: the subcommand (options, the plan, the summary).

docs/sweep.md is the user's guide.
"""

from __future__ import annotations

from vmapsim.tools.sweep.cells import Cell, cell_key, run_cell
from vmapsim.tools.sweep.grid import Grid, GridError, load_grid_file

__all__ = ["Cell", "Grid", "GridError", "cell_key", "load_grid_file", "run_cell"]
