"""Tests of the infra/ files: manifests, Helm values, kind/k3d configs, the nightly workflow."""
