#!/usr/bin/env bash
# What running as an ordinary user costs: `wharf run --rm IMAGE /bin/true` by an unprivileged user (its own store,
# the container's overlay mounted inside its user namespace) against the same by root, and against Debian's
# podman run by the same user (`run --rm --net none`, native overlay, cgroupfs, runc), on the Debian test image,
# alternating, RUNS times each:
#   warm    the image's layers already extracted (a second container)
#   import  `import` of the image's tar (wharf stores a gzip layer blob; podman extracts it into its storage)
#   first   the first `run --rm` after the import (wharf extracts the layer into its cache here), the image
#           removed again untimed afterwards (`rmi` + `prune`; `podman rmi`)
# Prints the median and range of each, and the paired ratios with issue 19's targets: rootless warm start at most
# 2x root's and at most 0.2x podman's.
#
#   sudo benches/rootless.sh          # RUNS=10 by default
#
# Needs root (to make the bench user `wharf-bench-rl`, with subordinate ranges, and the root store), podman,
# uidmap and setpriv; the image is the Debian minbase tree that benches/peers.sh makes under WHARF_BENCH_DIR
# (debootstrap, made here when missing). Stores live in a temporary directory removed at the end.
set -euo pipefail

RUNS=${RUNS:-10}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# The same build as benches/peers.sh times (gzip through ISA-L).
export WHARF_ISAL=${WHARF_ISAL:-require}
WHARF=$CARGO_TARGET_DIR/release/examples/wharf
BENCH_DIR=${WHARF_BENCH_DIR:-/var/tmp/wharf-bench}
USER_NAME=wharf-bench-rl
RANGE=500000

die() {
	echo "rootless.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run as root"
for tool in podman newuidmap setpriv useradd debootstrap; do
	command -v "$tool" >/dev/null || die "$tool is missing: run scripts/test-deps.sh (and apt-get install podman)"
done
(cd "$REPO" && cargo build --quiet --release --example wharf)

if [ ! -x "$BENCH_DIR/minbase/bin/true" ]; then
	mkdir -p "$BENCH_DIR"
	debootstrap --variant=minbase bookworm "$BENCH_DIR/minbase" >"$BENCH_DIR/debootstrap.log" 2>&1 ||
		die "debootstrap failed: see $BENCH_DIR/debootstrap.log"
fi
id -u "$USER_NAME" >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
grep -q "^$USER_NAME:$RANGE:65536$" /etc/subuid || usermod --add-subuids "$RANGE-$((RANGE + 65535))" "$USER_NAME"
grep -q "^$USER_NAME:$RANGE:65536$" /etc/subgid || usermod --add-subgids "$RANGE-$((RANGE + 65535))" "$USER_NAME"

dir=$(mktemp -d /var/tmp/wharf-rootlessbench.XXXXXX)
cleanup() {
	as_user podman_ system prune --all --force >/dev/null 2>&1 || true
	as_user podman_ system reset --force >/dev/null 2>&1 || true
	rm -rf --one-file-system "${dir:?}"
}
trap cleanup EXIT
chmod 755 "$dir"
mkdir -m 700 "$dir/home" "$dir/xdg"
chown "$USER_NAME:" "$dir/home" "$dir/xdg"
cp "$WHARF" "$dir/wharf"
chmod 755 "$dir/wharf"
tar -C "$BENCH_DIR/minbase" -cf "$dir/image.tar" .
chmod 644 "$dir/image.tar"

# as_user CMD ARGS: as the bench user, with its own home and runtime directory. `podman_` is podman with this
# machine's settings: native overlay (not vfs), cgroupfs and runc (crun refuses this host's hybrid cgroups), file
# events (no journald), no network namespace setup beyond --net none.
as_user() {
	local cmd=$1
	shift
	[ "$cmd" = podman_ ] && set -- --storage-driver overlay --cgroup-manager cgroupfs --runtime runc \
		--events-backend file "$@" && cmd=podman
	setpriv --reuid "$USER_NAME" --regid "$USER_NAME" --init-groups -- env HOME="$dir/home" \
		XDG_RUNTIME_DIR="$dir/xdg" XDG_DATA_HOME="$dir/home/data" XDG_CONFIG_HOME="$dir/home/config" "$cmd" "$@"
}
ours() { as_user "$dir/wharf" --root "$dir/home/store" "$@"; }
root() { "$dir/wharf" --root "$dir/root-store" "$@"; }
pod() { as_user podman_ "$@"; }

# Warm images, one run each first (layer caches, seccomp program caches, podman's first-use set-up).
ours import "$dir/image.tar" bench/deb:1 >/dev/null
root import "$dir/image.tar" bench/deb:1 >/dev/null
pod import "$dir/image.tar" bench/deb:1 >/dev/null
ours run --rm bench/deb:1 /bin/true
root run --rm bench/deb:1 /bin/true
pod run --rm --net none bench/deb:1 /bin/true

now() { date +%s%N; }
declare -A t
timed() { # timed NAME CMD...: append the wall time of CMD (microseconds) to t[NAME]
	local name=$1 s e
	shift
	s=$(now)
	"$@" >/dev/null
	e=$(now)
	t[$name]+="$(((e - s) / 1000)) "
}
for i in $(seq "$RUNS"); do
	# Which goes first alternates.
	if [ $((i % 2)) = 0 ]; then order="ours root pod"; else order="pod root ours"; fi
	for who in $order; do
		case $who in
		ours) timed warm_ours ours run --rm bench/deb:1 /bin/true ;;
		root) timed warm_root root run --rm bench/deb:1 /bin/true ;;
		pod) timed warm_pod pod run --rm --net none bench/deb:1 /bin/true ;;
		esac
	done
	for who in $order; do
		case $who in
		ours)
			timed import_ours ours import "$dir/image.tar" bench/fresh:1
			timed first_ours ours run --rm bench/fresh:1 /bin/true
			ours rmi bench/fresh:1 >/dev/null && ours prune >/dev/null
			;;
		root)
			timed import_root root import "$dir/image.tar" bench/fresh:1
			timed first_root root run --rm bench/fresh:1 /bin/true
			root rmi bench/fresh:1 >/dev/null && root prune >/dev/null
			;;
		pod)
			timed import_pod pod import "$dir/image.tar" bench/fresh:1
			timed first_pod pod run --rm --net none bench/fresh:1 /bin/true
			pod rmi bench/fresh:1 >/dev/null
			;;
		esac
	done
done
python3 - "${t[warm_ours]}" "${t[warm_root]}" "${t[warm_pod]}" "${t[first_ours]}" "${t[first_root]}" "${t[first_pod]}" \
	"${t[import_ours]}" "${t[import_root]}" "${t[import_pod]}" <<'PY'
import statistics, sys
wo, wr, wp, fo, fr, fp, io, ir, ip = ([int(x) / 1000 for x in a.split()] for a in sys.argv[1:])
f = lambda v: f"median {statistics.median(v):8.1f} ms  range {min(v):8.1f}-{max(v):8.1f} ms"
def ratio(name, a, b, target=None):
    r = [x / y for x, y in zip(a, b)]
    m = statistics.median(r)
    verdict = "" if target is None else f"   target <= {target}: {'met' if m <= target else 'MISSED'}"
    print(f"{name:44s} median {m:.2f}  range {min(r):.2f}-{max(r):.2f}{verdict}")
print(f"{'warm run --rm /bin/true, rootless wharf':44s} {f(wo)}")
print(f"{'warm run --rm /bin/true, root wharf':44s} {f(wr)}")
print(f"{'warm run --rm /bin/true, rootless podman':44s} {f(wp)}")
print(f"{'import of the tar, rootless wharf':44s} {f(io)}")
print(f"{'import of the tar, root wharf':44s} {f(ir)}")
print(f"{'import of the tar, rootless podman':44s} {f(ip)}")
print(f"{'first run after the import, rootless wharf':44s} {f(fo)}")
print(f"{'first run after the import, root wharf':44s} {f(fr)}")
print(f"{'first run after the import, rootless podman':44s} {f(fp)}")
ratio("warm: rootless wharf / root wharf", wo, wr, 2)
ratio("warm: rootless wharf / rootless podman", wo, wp, 0.2)
ratio("first run: rootless wharf / root wharf", fo, fr)
ratio("import + first run: rootless wharf / podman", [a + b for a, b in zip(io, fo)], [a + b for a, b in zip(ip, fp)])
PY
