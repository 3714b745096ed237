"""Fakes shipped in the package, for tests of code that drives boots (labgrid style)."""
