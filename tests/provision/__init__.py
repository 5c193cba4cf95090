"""Tests of `lhsoak provision`: readiness probes, waits, the nightly flow, inventory drafts."""
