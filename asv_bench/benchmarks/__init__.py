"""asv benchmarks for streamnorm, grouped as kernels, stats, normalize and io (DESIGN §6)."""
