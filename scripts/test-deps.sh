#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine (as root). Idempotent.
set -euo pipefail
pkgs=(
  busybox-static   # real binaries for test root filesystems
  skopeo umoci     # interop peers for archives, layouts and registries
  docker-registry  # the real registry the registry tests start on 127.0.0.1
  apache2-utils    # htpasswd (bcrypt) for the basic-auth registry
  openssl          # keys and certificates for the token-auth registry
  libseccomp-dev pkg-config  # wharf-sandbox links libseccomp
  libisal-dev      # the façade's default `isal` feature: wharf-rootfs inflates gzip with ISA-L
  runc crun containerd       # peers for the runtime tests and benchmarks
  containernetworking-plugins iptables iproute2  # wharf-network runs the CNI plugins (bridge, host-local, portmap)
  protobuf-compiler          # protoc: the k8s-cri dev-dependency (tests/cri.rs) builds the CRI protobufs
  util-linux curl            # nsenter, unshare and curl: the network tests enter their containers and fetch from them
  procps                     # ps: the CLI's top runs the host's ps, as docker top does (tests/cli_commands.rs)
  libarchive-tools libcap2-bin python3 buildah podman  # the layer corpus: bsdtar, setcap, Python's tarfile, buildah, podman (tests/corpus.rs); podman on the runtime (tests/podman.rs)
  e2fsprogs mount  # a small loop-mounted ext4 for the full-disk test (tests/faults.rs)
  uidmap passwd    # newuidmap/newgidmap and useradd/usermod: the rootless tests' user and its ranges (tests/rootless.rs)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these services on install where it can; the tests start their own instances.
for svc in docker-registry containerd podman.socket; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done
# podman's API socket is not used (the corpus runs podman directly): keep it from starting at boot.
systemctl disable podman.socket >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
