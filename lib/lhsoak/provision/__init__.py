"""Real clusters: build a throwaway kind or k3d cluster with Longhorn, wait until it is really ready,
write its inventory, run the nightly soak and tear it down (`lhsoak provision`), or draft the
inventory of a cluster the user already has (`lhsoak inventory init`).

Layers: `versions` (pins) and the command-line builders (`kind`, `k3d`, `helm`, `kubectl`, `images`)
are pure; `process` runs commands (deadlines, interruption); `readiness` judges cluster objects
(pure) and waits on them through `lhsoak.cluster`; `nightly` is the flow. Nothing here imports the
kubernetes client or the lab.
"""
