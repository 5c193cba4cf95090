"""The lab cluster's controllers: Kubernetes' and Longhorn's, emulated closely enough for the harness.

Public API:

- `LabControllers(store, fleet, profile, *, clock=time.time, follow_control_plane=True,
  on_api_change=None)` with `start()`, `pause()`, `resume()`, `stop()`, `paused`;
- `seed(store, fleet, profile, *, clock=time.time, settings=None)`: the objects a fresh cluster has;
- `seed_volume(store, name, *, labels=None, node="", size=...)`: one Longhorn Volume;
- `testing.InProcessLab`: the whole cluster in the running loop, for tests and benches.
"""

from lhsoak.lab.controllers.assembly import LabControllers
from lhsoak.lab.controllers.seed import seed, seed_volume

__all__ = ["LabControllers", "seed", "seed_volume"]
