"""Errors the CLI turns into exit codes.

Exit codes are part of the user contract: 0 passed, 1 the run or verdict failed, 2 bad input
(arguments, config, inventory, ledger) detected before anything was touched, 130 interrupted.
"""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, nothing touched."""
