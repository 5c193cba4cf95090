"""Sub-commands of the `lhsoak` CLI: one module each, found by `lhsoak.cli`.

A command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
"""
