#!/usr/bin/env bash
# The main job, end to end and offline, on a fresh Debian machine as root:
# a busybox root filesystem becomes an image in the store, goes to a loopback registry and back,
# and runs in a sandbox with limits. Everything it starts or creates is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run as root (the sandbox creates namespaces, cgroups and mounts)" >&2
  exit 1
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

need=()
for p in busybox-static docker-registry libseccomp-dev pkg-config libisal-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  step "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

step "building the wharf example CLI"
cargo build --release --example wharf
wharf_bin=target/release/examples/wharf

work=$(mktemp -d /tmp/wharf-demo.XXXXXX)
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wharf() { "$wharf_bin" --root "$work/store" "$@"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "starting a registry on 127.0.0.1:$port"
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/registry}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done

step "making a busybox root filesystem"
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$rootfs/bin/busybox"
for cmd in sh cat echo ls hostname id ps sleep uname head wc; do ln -s busybox "$rootfs/bin/$cmd"; done
printf 'NAME="wharf demo"\nBUILT="%s"\n' "$(date -u +%FT%TZ)" >"$rootfs/etc/release"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

image="localhost:$port/demo/busybox:1"
step "wharf import $image"
wharf import "$rootfs" "$image" --cmd /bin/sh
wharf images
step "wharf push $image"
wharf push "$image"
step "wharf rmi $image (the store forgets it)"
wharf rmi "$image"
wharf images
step "wharf pull $image (back from the registry)"
wharf pull "$image"
step "wharf run --rm --memory 64m --pids-limit 32 --hostname demo $image"
wharf run --rm --memory 64m --pids-limit 32 --hostname demo "$image" \
  sh -c 'cat /etc/release; echo "hostname: $(hostname)"; echo "pid: $$"; id; grep -E "^(CapEff|Seccomp):" /proc/self/status'
step "done"
