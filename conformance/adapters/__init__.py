"""Adapters: how the suite reaches an implementation.

- `reference`: this project's reference agent. The ONLY module of `conformance/` that may
  import `reference_agent` (the suite must stay usable against any implementation).
- `command`: any implementation, described by a small YAML adapter file (docs/scenarios.md).
"""
