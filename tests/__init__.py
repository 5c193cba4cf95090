"""The harness's own tests; a package so that topics share `tests.support` (pytest runs with
--import-mode=importlib, where a helper module is importable only through its package)."""
