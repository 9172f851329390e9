"""dialdaq's benchmarks: scripts run from the repository root (see README.md); a package so that they share modules."""
