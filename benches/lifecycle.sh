#!/bin/sh
# Helper of benches/peers.sh: one container's life through an OCI runtime CLI, as containerd drives it:
# `create`, `start`, wait for the process to exit, `delete`.
#
#   lifecycle.sh "RUNTIME [GLOBAL OPTIONS]" BUNDLE ID
#
# The container's process is not a child of this script (the runtime's create forked it and exited), so the wait
# polls /proc/PID/stat with shell builtins (no fork) until the process is gone or a zombie: an orphan's zombie
# lasts until pid 1 reaps it, which on some machines takes seconds and is neither runtime's doing.
set -e
rt=$1; b=$2; id=$3; p=/tmp/$id.pid
$rt create --bundle "$b" --pid-file "$p" "$id" </dev/null
pid=$(cat "$p")
$rt start "$id"
while read -r st </proc/"$pid"/stat 2>/dev/null; do
	case "$st" in *") Z "* | *") X "*) break ;; esac
done
$rt delete "$id"
rm -f "$p"
