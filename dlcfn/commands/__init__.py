"""Click commands, one module per area; imported lazily by dlcfn.cli."""
