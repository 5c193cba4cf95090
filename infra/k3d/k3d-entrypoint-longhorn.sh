#!/bin/sh
# Prepares a k3d node for Longhorn before k3s starts; run by k3d's entrypoint (it runs every
# /bin/k3d-entrypoint-*.sh, output to /var/log/k3d-entrypoints_*.log) or by /bin/lhsoak-entrypoint.sh.
# There is no init system in the node to start iscsid, so this does (k3d#719).
set -o errexit
set -o nounset

echo "[$(date -Iseconds)] [longhorn] preparing the node for Longhorn"

# CSI volume mounts propagate from the plugin pod to the kubelet only over a shared mount (k3d's
# K3D_FIX_MOUNTS does the same; doing it here too keeps the image usable without it).
mount --make-rshared /

# Each node gets its own initiator name on first start, not one baked into the image.
if ! grep -q '^InitiatorName=' /etc/iscsi/initiatorname.iscsi 2>/dev/null; then
  mkdir -p /etc/iscsi
  echo "InitiatorName=$(iscsi-iname)" > /etc/iscsi/initiatorname.iscsi
fi

# /run is a fresh tmpfs on every start; iscsid forks into the background once it is listening.
mkdir -p /run/lock/iscsi
if ! pidof iscsid >/dev/null 2>&1; then
  iscsid
fi
echo "[$(date -Iseconds)] [longhorn] iscsid running ($(iscsiadm --version))"
