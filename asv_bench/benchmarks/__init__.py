"""asv benchmarks for streamnorm, grouped as kernels, stats, normalize and io (docs/design.md
§7)."""
