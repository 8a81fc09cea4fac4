#!/usr/bin/env bash
# Times wharf against the tools people use today (skopeo, umoci, runc, containerd's ctr) on the same
# work, on this machine, in one run, and prints a table with wharf/peer ratios and whether the
# issues' targets are met. See README.md "## Benchmarks".
#
#   sudo benches/peers.sh            # RUNS=5 by default; start and lifecycle run max(RUNS, 20) times
#
# Environment:
#   RUNS=N              timed runs per side (alternating wharf and peer; the median is reported)
#   WHARF_BENCH_DIR=D   cache and scratch space (default /var/tmp/wharf-bench): the debootstrap tree
#                       and the built image are kept there so reruns skip building them
#   OPS="pull unpack pullunpack coldrun firstrun warmrun start lifecycle assembly spawn"
#                       which benchmarks to run
#   CARGO_TARGET_DIR    where the release examples are built (default: the repository's target/)
#
# Needs root (debootstrap, unpacking with owners and devices, namespaces, cgroups) and Debian
# (peers are installed with apt-get). Any failure stops the script with a message: nothing is
# silently skipped.
set -euo pipefail

RUNS=${RUNS:-5}
BENCH_DIR=${WHARF_BENCH_DIR:-/var/tmp/wharf-bench}
OPS=${OPS-"pull unpack pullunpack coldrun firstrun warmrun start lifecycle assembly spawn"}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$CARGO_TARGET_DIR/release/examples
HERE=$REPO/benches
SUITE=debian:1 # repository bench/debian, tag 1

die() {
	echo "peers.sh: $*" >&2
	exit 1
}
log() { echo "peers.sh: $*" >&2; }
want() { [[ " $OPS " == *" $1 "* ]]; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, unpacking owners and device nodes, namespaces, cgroups)"
[ "${RUNS}" -ge 5 ] 2>/dev/null || die "RUNS must be at least 5 (got '${RUNS}')"

# --- peers, from Debian --------------------------------------------------------------------
PKGS="curl debootstrap e2fsprogs skopeo umoci runc containerd docker-registry python3 busybox-static libisal-dev util-linux"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
	log "installing $(echo $missing)"
	apt-get install -y $missing >/dev/null || die "apt-get install $missing failed"
fi
PY=/usr/bin/python3
SECCOMP_PROFILE=$REPO/crates/sandbox/data/docker-seccomp-default.json
[ -f "$SECCOMP_PROFILE" ] || die "$SECCOMP_PROFILE is missing"

# --- wharf, built once in release mode -----------------------------------------------------
log "building the release examples (wharf, unpack, sandbox, runtime) in $CARGO_TARGET_DIR"
# The figures are for ISA-L inflate: a build that silently fell back to zlib-rs would mislead.
export WHARF_ISAL=require
(cd "$REPO" && cargo build --quiet --release --example wharf --example unpack --example sandbox --example runtime) ||
	die "cargo build --release of the examples failed"
"$BIN/wharf" --help | grep -qE '^\s+pull\b' || die "the wharf CLI ($BIN/wharf) has no 'pull' command yet"

mkdir -p "$BENCH_DIR"
RUN=$BENCH_DIR/run
RESULTS=$BENCH_DIR/results.txt
REGISTRY_PID=
CONTAINERD_PID=
CTR_STATE=/run/wharf-bench-containerd
cleanup() {
	set +e
	if [ -n "$CONTAINERD_PID" ]; then
		kill "$CONTAINERD_PID" 2>/dev/null
		wait "$CONTAINERD_PID" 2>/dev/null
		rm -rf "$CTR_STATE"
	fi
	if [ -n "$REGISTRY_PID" ]; then
		kill "$REGISTRY_PID" 2>/dev/null
		wait "$REGISTRY_PID" 2>/dev/null
	fi
	if mountpoint -q "$RUN/scratch"; then umount "$RUN/scratch"; fi
	rm -rf "$RUN" "$BENCH_DIR/scratch.img"
}
trap cleanup EXIT

# --- the test image: debootstrap minbase of Debian stable + a layer with whiteouts ----------
ROOTFS=$BENCH_DIR/minbase
if [ ! -d "$ROOTFS" ]; then
	log "debootstrap --variant=minbase bookworm (cached in $ROOTFS)"
	rm -rf "$ROOTFS.tmp"
	debootstrap --variant=minbase bookworm "$ROOTFS.tmp" http://deb.debian.org/debian >"$BENCH_DIR/debootstrap.log" 2>&1 ||
		die "debootstrap failed, see $BENCH_DIR/debootstrap.log"
	mv "$ROOTFS.tmp" "$ROOTFS"
fi
LAYOUT=$BENCH_DIR/image # OCI layout, tag 1
if [ ! -f "$LAYOUT/.complete" ]; then
	log "building the image with umoci (cached in $LAYOUT)"
	rm -rf "$LAYOUT" "$BENCH_DIR/build"
	umoci init --layout "$LAYOUT"
	umoci new --image "$LAYOUT:1"
	umoci unpack --image "$LAYOUT:1" "$BENCH_DIR/build" >/dev/null
	cp -a "$ROOTFS/." "$BENCH_DIR/build/rootfs/"
	umoci repack --refresh-bundle --image "$LAYOUT:1" --history.created_by "debootstrap --variant=minbase bookworm" "$BENCH_DIR/build"
	# Layer 2, like a Dockerfile's clean-up RUN: deletions become whiteouts (whole directories
	# and single files), plus new and replaced files and a hardlink.
	b=$BENCH_DIR/build/rootfs
	rm -rf "$b"/usr/share/doc "$b"/usr/share/man "$b"/usr/share/info "$b"/var/cache/apt/*.bin "$b"/var/log/apt
	find "$b"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} +
	rm -f "$b"/etc/motd "$b"/etc/issue.net
	echo "deb http://deb.debian.org/debian bookworm main" >"$b"/etc/apt/sources.list
	mkdir -p "$b"/opt/bench
	head -c 1048576 /dev/urandom >"$b"/opt/bench/data
	ln "$b"/opt/bench/data "$b"/opt/bench/data-link
	umoci repack --image "$LAYOUT:1" --history.created_by "clean up docs, add /opt/bench" "$BENCH_DIR/build"
	umoci config --image "$LAYOUT:1" --config.cmd /bin/bash
	umoci gc --layout "$LAYOUT"
	rm -rf "$BENCH_DIR/build"
	touch "$LAYOUT/.complete"
fi
IMAGE_BYTES=$(du -sb "$ROOTFS" | cut -f1)
IMAGE_FILES=$(find "$ROOTFS" | wc -l)

# --- a loopback registry holding the image -------------------------------------------------
if mountpoint -q "$RUN/scratch"; then umount "$RUN/scratch"; fi # left by a killed run
rm -rf "$RUN"
mkdir -p "$RUN"
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$RUN/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $RUN/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$RUN/registry.yml" >"$RUN/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
	kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited: $(cat "$RUN/registry.log")"
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null || die "docker-registry does not answer on 127.0.0.1:$PORT"
REF=localhost:$PORT/bench/$SUITE
skopeo copy --quiet --dest-tls-verify=false "oci:$LAYOUT:1" "docker://$REF" || die "skopeo could not push to $REF"
log "image $REF: $((IMAGE_BYTES / 1000000)) MB, $IMAGE_FILES files in the base layer; 2 layers"

# --- timing ------------------------------------------------------------------------------
: >"$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
export MEASURE_LOG=$RUN/command.log
measure() { # OP SIDE CMD...: one timed run, after the page cache's dirty data is written back
	sync
	$PY "$HERE/measure.py" run "$RESULTS" "$1" "$2" -- "${@:3}"
}
# Every benchmark writes into a freshly made ext4 filesystem (a loop device), and no output is
# deleted while it runs: creating files right after deleting thousands of others makes ext4 scan
# its inode tables for "recently deleted" inodes (a kernel cost that profiled as ~45% of an
# unpack), which would measure the benchmark's own clean-up rather than either tool.
SCRATCH=$RUN/scratch
SCRATCH_IMG=$BENCH_DIR/scratch.img
scratch_fs() {
	if mountpoint -q "$SCRATCH"; then umount "$SCRATCH"; fi
	mkdir -p "$SCRATCH"
	rm -f "$SCRATCH_IMG"
	# Inode tables and journal initialised now, not lazily by a kernel thread that would compete with
	# the first timed runs.
	truncate -s 12G "$SCRATCH_IMG"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$SCRATCH_IMG" || die "mkfs.ext4 $SCRATCH_IMG failed"
	mount -o loop "$SCRATCH_IMG" "$SCRATCH" || die "cannot loop-mount $SCRATCH_IMG (needs loop devices)"
}

# Each benchmark runs a timed command per side (function OP_SIDE), each run writing to a new
# directory; the sides take turns, and which goes first rotates too, so none always runs with
# another's leftovers in the caches.
bench() { # BASE OP RUNS [SIDE...]: the sides default to "wharf peer"
	local base=$1 op=$2 n=$3 i j k
	shift 3
	local sides=("$@")
	[ ${#sides[@]} -gt 0 ] || sides=(wharf peer)
	log "$op: $n runs per side (${sides[*]})"
	for i in $(seq "$n"); do
		for j in $(seq 0 $((${#sides[@]} - 1))); do
			k=$(((i - 1 + j) % ${#sides[@]}))
			"${op}_${sides[$k]}" "$base/${sides[$k]}-$i"
		done
	done
}
# The benchmarks of one step each run on a freshly made ext4 (see above).
bench_scratch() {
	scratch_fs
	bench "$SCRATCH" "$@"
}
# The benchmarks of what a user pays run on the filesystem the user has (here /var/tmp's), with the
# previous runs' images removed as a user removes them (wharf rmi + prune, ctr image rm, rm -rf of
# a layout and bundle) right after each run, so the next run creates files where thousands were
# just deleted.
NORMAL=$RUN/normal
bench_normal() {
	mkdir -p "$NORMAL"
	bench "$NORMAL" "$@"
}

pull_wharf() { mkdir "$1" && measure pull wharf "$BIN/wharf" --root "$1/store" pull "$REF"; }
pull_peer() { mkdir "$1" && measure pull peer skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$1/layout:1"; }

unpack_wharf() { measure unpack wharf "$BIN/unpack" --root "$RUN/src-store" "$REF" "$1"; }
unpack_peer() { measure unpack peer umoci unpack --image "$RUN/src-layout:1" "$1"; }

pullunpack_wharf() {
	mkdir "$1"
	measure pullunpack wharf sh -c "'$BIN/wharf' --root '$1/store' pull '$REF' && '$BIN/unpack' --root '$1/store' '$REF' '$1/rootfs'"
}
# What a user types for an image that is not local: wharf's run pulls it, extracting each layer while it
# downloads; the peers copy, unpack and run it, or pull and run it with containerd (what Docker does).
# wharf's side uses one store for all runs, emptied after each as a user empties it.
WSTORE=$NORMAL/wharf-store
wharf_forget() { # untimed: remove the image and its cached layers as a user does
	"$BIN/wharf" --root "$WSTORE" rmi "$REF" >/dev/null || die "wharf rmi $REF failed"
	"$BIN/wharf" --root "$WSTORE" prune >/dev/null || die "wharf prune failed"
}
coldrun_wharf() {
	measure coldrun wharf "$BIN/wharf" --root "$WSTORE" run --rm "$REF" /bin/true
	wharf_forget
}
coldrun_peer() {
	mkdir "$1"
	measure coldrun peer sh -c "skopeo copy --quiet --src-tls-verify=false 'docker://$REF' 'oci:$1/layout:1' &&
		umoci unpack --image '$1/layout:1' '$1/bundle' >/dev/null &&
		$PY -c 'import json, sys; p = sys.argv[1]; c = json.load(open(p)); c[\"process\"].update(args=[\"/bin/true\"], terminal=False); json.dump(c, open(p, \"w\"))' '$1/bundle/config.json' &&
		runc run --bundle '$1/bundle' 'wharf-bench-cold-${1##*-}'"
	rm -rf "$1"
}
CTR() { ctr --address "$CTR_STATE/containerd.sock" --namespace wharf-bench "$@"; }
coldrun_ctr() {
	measure coldrun ctr sh -c "ctr --address '$CTR_STATE/containerd.sock' --namespace wharf-bench image pull --plain-http '$REF' >/dev/null &&
		ctr --address '$CTR_STATE/containerd.sock' --namespace wharf-bench run --rm '$REF' 'wharf-bench-cold-${1##*-}' /bin/true"
	CTR image rm --sync "$REF" >/dev/null || die "ctr image rm $REF failed"
}

# The first run of an image just pulled (the pull untimed), against wharf's own unpack of it: filling
# the layer cache should cost no more than an unpack.
firstrun_wharf() {
	"$BIN/wharf" --root "$WSTORE" pull "$REF" >/dev/null || die "wharf pull $REF failed"
	measure firstrun wharf "$BIN/wharf" --root "$WSTORE" run --rm "$REF" /bin/true
	wharf_forget
}
firstrun_unpack() {
	measure firstrun unpack "$BIN/unpack" --root "$RUN/src-store" "$REF" "$1"
	rm -rf "$1"
}

# A warm start: the image pulled and run once before, untimed; the floor is the namespaces alone.
WARM=$NORMAL/warm-store
warmrun_wharf() { measure warmrun wharf "$BIN/wharf" --root "$WARM" run --rm "$REF" /bin/true; }
warmrun_floor() { measure warmrun floor unshare --fork --pid --mount --uts --ipc --net --cgroup /bin/true; }
warmrun_ctr() { measure warmrun ctr ctr --address "$CTR_STATE/containerd.sock" --namespace wharf-bench run --rm "$REF" "wharf-bench-warm-${1##*-}" /bin/true; }
warmrun_runc() { measure warmrun runc runc run --bundle "$RUN/run-bundle" "wharf-bench-warm-$$-${1##*-}"; }
pullunpack_peer() {
	mkdir "$1"
	measure pullunpack peer sh -c "skopeo copy --quiet --src-tls-verify=false 'docker://$REF' 'oci:$1/layout:1' && umoci unpack --image '$1/layout:1' '$1/bundle'"
}

start_wharf() { measure start wharf "$BIN/sandbox" "$RUN/run-bundle"; }
start_peer() { measure start peer runc run --bundle "$RUN/run-bundle" "wharf-bench-$$-${1##*-}"; }

# The runtime CLIs as containerd drives them: separate create, start and delete processes.
lifecycle_wharf() { measure lifecycle wharf sh "$HERE/lifecycle.sh" "$BIN/runtime --root /run/wharf-bench-runtime" "$RUN/run-bundle" "wharf-bench-$$-${1##*-}"; }
lifecycle_peer() { measure lifecycle peer sh "$HERE/lifecycle.sh" runc "$RUN/run-bundle" "wharf-bench-$$-${1##*-}"; }

if want unpack || want firstrun || want start || want lifecycle || want warmrun; then
	# Sources for unpack: the same blobs, in wharf's store and in an OCI layout for umoci.
	"$BIN/wharf" --root "$RUN/src-store" pull "$REF" >/dev/null || die "wharf pull $REF failed"
	skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$RUN/src-layout:1" || die "skopeo copy failed"
fi
if want coldrun || want warmrun; then
	# Debian's containerd on a socket, root and state of its own, its CRI plugin off.
	rm -rf "$CTR_STATE"
	mkdir -p "$CTR_STATE" "$RUN/containerd"
	printf '%s\n' 'version = 2' "root = \"$RUN/containerd/root\"" "state = \"$CTR_STATE/state\"" \
		'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$CTR_STATE/containerd.sock\"" \
		'[ttrpc]' "  address = \"$CTR_STATE/containerd.sock.ttrpc\"" >"$RUN/containerd/config.toml"
	containerd --config "$RUN/containerd/config.toml" >"$RUN/containerd/log" 2>&1 &
	CONTAINERD_PID=$!
	for _ in $(seq 300); do
		CTR version >/dev/null 2>&1 && break
		kill -0 "$CONTAINERD_PID" 2>/dev/null || die "containerd exited: $(tail -5 "$RUN/containerd/log")"
		sleep 0.1
	done
	CTR version >/dev/null || die "containerd does not answer on $CTR_STATE/containerd.sock"
fi
want pull && bench_scratch pull "$RUNS"
want unpack && bench_scratch unpack "$RUNS"
want pullunpack && bench_scratch pullunpack "$RUNS"
want coldrun && bench_normal coldrun "$RUNS" wharf peer ctr
want firstrun && bench_normal firstrun "$RUNS" wharf unpack
if want start || want lifecycle || want warmrun; then
	# One bundle for both runtimes: `runc spec` + bundle.py (Docker's caps and seccomp, limits).
	mkdir -p "$RUN/run-bundle"
	"$BIN/unpack" --root "$RUN/src-store" "$REF" "$RUN/run-bundle/rootfs" 2>/dev/null || die "unpack for the start bundle failed"
	(cd "$RUN/run-bundle" && runc spec) || die "runc spec failed"
	$PY "$HERE/bundle.py" "$RUN/run-bundle/config.json" "$SECCOMP_PROFILE"
	runc run --bundle "$RUN/run-bundle" "wharf-bench-$$-check" || die "runc cannot run the start bundle"
	"$BIN/sandbox" "$RUN/run-bundle" || die "wharf's sandbox example cannot run the start bundle"
	sh "$HERE/lifecycle.sh" "$BIN/runtime --root /run/wharf-bench-runtime" "$RUN/run-bundle" "wharf-bench-$$-check" ||
		die "wharf's runtime example cannot create, start and delete the start bundle"
	if want start; then bench_scratch start "$((RUNS > 20 ? RUNS : 20))"; fi
	if want lifecycle; then bench_scratch lifecycle "$((RUNS > 20 ? RUNS : 20))"; fi
fi
if want warmrun; then
	"$BIN/wharf" --root "$WARM" run --rm "$REF" /bin/true || die "wharf cannot run $REF"
	CTR image pull --plain-http "$REF" >/dev/null || die "ctr cannot pull $REF"
	CTR run --rm "$REF" wharf-bench-warm-check /bin/true || die "ctr cannot run $REF"
	bench_normal warmrun "$((RUNS > 20 ? RUNS : 20))" wharf floor ctr runc
fi

DIVAN=
if want assembly; then
	log "second container and layer unpack throughput: cargo bench --bench rootfs"
	DIVAN=$RUN/divan.txt
	scratch_fs
	(cd "$REPO" && WHARF_BENCH_TMP=$SCRATCH cargo bench --quiet --bench rootfs) | tee "$DIVAN" ||
		die "cargo bench --bench rootfs failed"
fi
if want spawn; then
	# In-process spawn-to-exit, without the process start-up of either CLI.
	log "spawn to exit in process: cargo bench --bench sandbox"
	(cd "$REPO" && cargo bench --quiet --bench sandbox) || die "cargo bench --bench sandbox failed"
fi

echo
echo "wharf vs peers — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
echo "image: debootstrap --variant=minbase bookworm, $((IMAGE_BYTES / 1000000)) MB, $IMAGE_FILES files + a layer with whiteouts; registry: docker-registry on 127.0.0.1"
echo "load average (1/5/15 min) before timing: $LOAD_START, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $(skopeo --version), umoci $(umoci --version | awk '{print $3}'), $(runc --version | head -1), containerd $(containerd --version | awk '{print $3}')"
echo
$PY "$HERE/measure.py" report "$RESULTS" $DIVAN
