"""Entry point of vmapsim_rbtree (placeholder until the components land)."""
