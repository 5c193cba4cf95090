#!/usr/bin/env bash
# Installs the pinned command-line tools the nightly needs into DIR (default ~/.local/bin):
#   install-tools.sh kind|k3d [DIR]
# kind or k3d, helm and kubectl, each checked against the checksum its project publishes beside the
# download. The versions are the ones lib/lhsoak/provision/versions.py pins (a test keeps them equal).
set -o errexit -o nounset -o pipefail

KIND_VERSION=v0.32.0
K3D_VERSION=v5.9.0
HELM_VERSION=v3.19.0
KUBECTL_VERSION=v1.36.1

provider="${1:?usage: install-tools.sh kind|k3d [DIR]}"
target="${2:-${HOME}/.local/bin}"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${target}"

log() { printf '[install-tools] %s\n' "$*"; }

# fetch URL FILE: download URL to $work/FILE.
fetch() { curl --fail --silent --show-error --location --retry 3 --output "${work}/$2" "$1"; }

# verify FILE SUM: the file's sha256 must be SUM.
verify() {
  echo "$2  ${work}/$1" | sha256sum --check --quiet - || { echo "checksum mismatch for $1" >&2; exit 1; }
}

install_kind() {
  local url="https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-${arch}"
  fetch "${url}" kind
  fetch "${url}.sha256sum" kind.sha256sum
  verify kind "$(cut -d' ' -f1 "${work}/kind.sha256sum")"
  install -m 0755 "${work}/kind" "${target}/kind"
}

install_k3d() {
  local base="https://github.com/k3d-io/k3d/releases/download/${K3D_VERSION}"
  fetch "${base}/k3d-linux-${arch}" k3d
  fetch "${base}/checksums.txt" checksums.txt
  verify k3d "$(awk -v f="k3d-linux-${arch}" '$2 == f || $2 == "_dist/" f {print $1}' "${work}/checksums.txt")"
  install -m 0755 "${work}/k3d" "${target}/k3d"
}

install_helm() {
  local name="helm-${HELM_VERSION}-linux-${arch}.tar.gz"
  fetch "https://get.helm.sh/${name}" "${name}"
  fetch "https://get.helm.sh/${name}.sha256sum" helm.sha256sum
  verify "${name}" "$(cut -d' ' -f1 "${work}/helm.sha256sum")"
  tar -xzf "${work}/${name}" -C "${work}" "linux-${arch}/helm"
  install -m 0755 "${work}/linux-${arch}/helm" "${target}/helm"
}

install_kubectl() {
  local url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl"
  fetch "${url}" kubectl
  fetch "${url}.sha256" kubectl.sha256
  verify kubectl "$(cat "${work}/kubectl.sha256")"
  install -m 0755 "${work}/kubectl" "${target}/kubectl"
}

case "${provider}" in
  kind) install_kind ;;
  k3d) install_k3d ;;
  *) echo "usage: install-tools.sh kind|k3d [DIR]" >&2; exit 2 ;;
esac
install_helm
install_kubectl
log "installed ${provider}, helm ${HELM_VERSION} and kubectl ${KUBECTL_VERSION} into ${target}"
case ":${PATH}:" in
  *":${target}:"*) ;;
  *) log "add ${target} to PATH" ;;
esac
