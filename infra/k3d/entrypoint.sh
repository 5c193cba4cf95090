#!/bin/sh
# The image's own entrypoint, used only when k3d does not put its /bin/k3d-entrypoint.sh in front:
# prepare the node for Longhorn, then become k3s (as rancher/k3s's ENTRYPOINT ["/bin/k3s"]).
set -o errexit
/bin/k3d-entrypoint-longhorn.sh
exec /bin/k3s "$@"
