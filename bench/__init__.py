"""kefu benchmarks: `make bench` runs bench.run; results go to docs/BENCHMARKS.md, docs/COST.md and JSON."""
