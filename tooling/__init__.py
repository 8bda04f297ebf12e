"""Development tooling, outside the runtime: the local broker and the worker-cluster launcher
that the integration tests and the benchmarks share (bench/ must not import tests/)."""
