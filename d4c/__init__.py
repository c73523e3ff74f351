"""The `d4c` command line: a thin dispatcher over the project's subsystems.

Each subsystem owns its commands in its own `cli` module and exposes `register(subparsers)`;
this package only wires them together, so the CLI never holds logic that tests cannot call.
"""
