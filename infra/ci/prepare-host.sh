#!/usr/bin/env bash
# Prepares a Linux host with Docker (a CI runner or a workstation) for a kind or k3d cluster that runs
# Longhorn. Run as root (or through sudo); safe to run again.
#
# Why each step:
# - iscsi_tcp: Longhorn v1 volumes are iSCSI devices. The initiator's user space (iscsid) runs inside
#   each node container (infra/kind, infra/k3d), but the kernel module belongs to the host: a
#   container cannot load it.
# - dm_crypt, nfs: Longhorn's node checks look for them (encrypted and RWX volumes); loaded when the
#   kernel has them, never fatal.
# - inotify limits: 4 node containers on one kernel exhaust the defaults (kind known issue "Pod errors
#   due to too many open files").
# - mounts: none on the host. CSI mount propagation needs / shared inside each node; kind's entrypoint
#   and infra/k3d's do `mount --make-rshared /` in the node. Longhorn's data path /var/lib/longhorn is a
#   per-node Docker volume (kind: the node's /var volume; k3d: the image's VOLUME), so nodes never share
#   replica files. This script only checks that Docker's data root has room for them.
set -o errexit -o nounset -o pipefail

log() { printf '[prepare-host] %s\n' "$*"; }
die() { printf '[prepare-host] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

load_module() {
  local module="$1" required="$2"
  if [ -d "/sys/module/${module}" ]; then
    log "kernel module ${module}: loaded"
  elif as_root modprobe "${module}"; then
    log "kernel module ${module}: loaded now"
  elif [ "${required}" = required ]; then
    die "cannot load kernel module ${module}: install the kernel's extra modules (Ubuntu: linux-modules-extra-\$(uname -r))"
  else
    log "kernel module ${module}: not available (optional)"
  fi
}

command -v docker >/dev/null || die "docker is not installed (Debian/Ubuntu: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer: start it, or add this user to the docker group"

load_module iscsi_tcp required
load_module dm_crypt optional
load_module nfs optional

as_root sysctl -q -w fs.inotify.max_user_watches=524288
as_root sysctl -q -w fs.inotify.max_user_instances=512
log "inotify: max_user_watches=524288 max_user_instances=512"

docker_root="$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)"
free_gib="$(df --output=avail -BG "${docker_root}" 2>/dev/null | tail -n 1 | tr -dc '0-9')"
if [ -n "${free_gib}" ] && [ "${free_gib}" -lt 20 ]; then
  die "only ${free_gib} GiB free under ${docker_root}: node images, Longhorn images and replicas need about 20 GiB"
fi
log "docker data root ${docker_root}: ${free_gib:-?} GiB free"
log "host ready"
