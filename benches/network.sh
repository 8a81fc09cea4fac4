#!/usr/bin/env bash
# What a network costs at start: `wharf run --rm IMAGE /bin/true` with `--net bridge` (CNI: bridge with
# host-local and the loopback plugin on ADD, DEL at exit) against `--net none`, alternating, RUNS times each,
# and the median and range of each side and of the difference. Issue 20's target: at most 15 ms extra.
#
#   sudo benches/network.sh          # RUNS=10 by default
#
# Everything runs inside a network namespace made for the run (unshare --net), so the bridge, veths and rules
# never touch the host's network; the store is a temporary directory removed at the end. Needs root, Debian's
# containernetworking-plugins and busybox-static, and builds the example CLI in release mode.
set -euo pipefail

RUNS=${RUNS:-10}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
WHARF=$CARGO_TARGET_DIR/release/examples/wharf

if [ "${1:-}" != --inside ]; then
	[ "$(id -u)" = 0 ] || { echo "network.sh: run as root" >&2; exit 1; }
	for p in /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /bin/busybox; do
		[ -e "$p" ] || { echo "network.sh: $p is missing: run scripts/test-deps.sh" >&2; exit 1; }
	done
	(cd "$REPO" && cargo build --quiet --release --example wharf)
	exec unshare --net "$0" --inside
fi

ip link set lo up
dir=$(mktemp -d /tmp/wharf-netbench.XXXXXX)
cleanup() {
	"$WHARF" --root "$dir/store" network ls >/dev/null 2>&1 || true
	rm -rf --one-file-system "${dir:?}"
}
trap cleanup EXIT
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev"
cp /bin/busybox "$dir/rootfs/bin/busybox"
ln -s busybox "$dir/rootfs/bin/true"
"$WHARF" --root "$dir/store" import "$dir/rootfs" bench/net:1 --cmd /bin/true >/dev/null
w() { "$WHARF" --root "$dir/store" "$@"; }
# One warm-up each: the default network is created (and the plugins' versions negotiated) once.
w run --rm --net bridge bench/net:1 /bin/true
w run --rm --net none bench/net:1 /bin/true

ms() { local s e; s=$(date +%s%N); w run --rm --net "$1" bench/net:1 /bin/true; e=$(date +%s%N); echo $(((e - s) / 1000)); }
bridge=() none=()
for _ in $(seq "$RUNS"); do
	bridge+=("$(ms bridge)")
	none+=("$(ms none)")
done
python3 - "${bridge[*]}" "${none[*]}" <<'PY'
import statistics, sys
b = [int(x) / 1000 for x in sys.argv[1].split()]
n = [int(x) / 1000 for x in sys.argv[2].split()]
d = [x - y for x, y in zip(b, n)]
f = lambda v: f"median {statistics.median(v):6.1f} ms  range {min(v):6.1f}-{max(v):6.1f} ms"
print(f"run --rm /bin/true --net bridge: {f(b)}")
print(f"run --rm /bin/true --net none:   {f(n)}")
print(f"bridge - none (paired):          {f(d)}   target <= 15 ms extra")
PY
