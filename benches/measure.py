#!/usr/bin/env python3
"""Helper of benches/peers.sh: time one command, and print the comparison table.

  measure.py run RESULTS OP SIDE -- CMD...   run CMD once; append "OP SIDE wall_s cpu_s maxrss_kib" to RESULTS
  measure.py report RESULTS [DIVAN_OUTPUT]   medians per OP and SIDE, ratios of wharf to each peer, targets met or not

Wall time is taken around fork+exec+wait4 with a monotonic clock; CPU time (user + system) and
peak RSS come from wait4's rusage, which covers the command and every descendant it waited for.
"""
import os
import statistics
import sys
import time

MIB = 1024  # ru_maxrss is in KiB

# Rows of the table: (op, peer side, title, peer name, max wharf/peer wall ratio or None). An op's wharf side is
# "wharf"; an op may be compared with several peers, each its own side.
ROWS = [
    ("pull", "peer", "pull to local storage", "skopeo copy", 0.5),
    ("unpack", "peer", "unpack to a rootfs", "umoci unpack", 0.15),
    ("pullunpack", "peer", "pull + unpack", "skopeo copy + umoci unpack", None),
    ("coldrun", "peer", "fresh image: pull + run", "skopeo + umoci + runc run", 0.15),
    ("coldrun", "ctr", "fresh image: pull + run", "ctr pull + ctr run --rm", 0.2),
    ("firstrun", "unpack", "first run after a pull", "wharf's examples/unpack", 1.2),
    ("warmrun", "floor", "warm run --rm /bin/true", "unshare (the floor)", 2.0),
    ("warmrun", "ctr", "warm run --rm /bin/true", "ctr run --rm", 0.3),
    ("warmrun", "runc", "warm run --rm /bin/true", "runc run", None),
    ("start", "peer", "start /bin/true and wait", "runc run", 0.4),
    ("lifecycle", "peer", "runtime CLI: create + start + wait + delete", "runc", 0.4),
]
# op -> highest peak RSS of wharf's side, MiB
MAX_RSS_MIB = {"pull": 32, "coldrun": 64}
ASSEMBLY_MAX_MS = 10.0
FLAT_MAX_RATIO = 1.5  # 200 MB image vs 10 MB image, same layer count


def run(results, op, side, cmd, log):
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(open(log, errors="replace").read()[-4000:])
        sys.exit(f"measure.py: {op}/{side} failed with {code}: {' '.join(cmd)} (log: {log})")
    with open(results, "a") as f:
        f.write(f"{op} {side} {wall:.6f} {ru.ru_utime + ru.ru_stime:.6f} {ru.ru_maxrss}\n")


def fmt_time(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def divan_medians(path):
    """Median column of divan rows named like `1x10MB` (layers x image size), in ms."""
    units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}
    out = {}
    for line in open(path, errors="replace"):
        # Tree drawing first ("│  ├─ 1x10MB  fastest │ slowest │ median …"), then the columns.
        cols = [c.strip() for c in line.lstrip("│├╰─ ").split("│")]
        if len(cols) < 4:
            continue
        words = cols[0].split()
        if len(words) != 3 or "x" not in words[0] or not words[0].endswith("MB"):
            continue
        value, unit = cols[2].split()
        out[words[0]] = float(value) * units[unit]
    return out


def report(results, divan=None):
    rows = {}
    for line in open(results):
        op, side, wall, cpu, rss = line.split()
        rows.setdefault((op, side), []).append((float(wall), float(cpu), int(rss)))
    missed = []
    head = f"{'operation':43} {'peer':28} {'runs':>4}  {'wall wharf':>11} {'wall peer':>11} {'ratio':>6}  " \
           f"{'cpu wharf':>10} {'cpu peer':>10} {'ratio':>6}  {'rss wharf':>10} {'rss peer':>10}  target"
    print(head)
    print("-" * len(head))
    for op, side, title, peer, target in ROWS:
        w, p = rows.get((op, "wharf")), rows.get((op, side))
        if not w or not p:
            if target is not None and any(k[0] == op for k in rows):
                missed.append(f"{op} against {peer} not measured")
            continue
        med = lambda xs, i: statistics.median(x[i] for x in xs)
        ww, pw, wc, pc = med(w, 0), med(p, 0), med(w, 1), med(p, 1)
        wr, pr = max(x[2] for x in w) / MIB, max(x[2] for x in p) / MIB
        verdicts = []
        if target is not None:
            ok = ww / pw <= target
            verdicts.append(f"wall ≤ {target}× {'met' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"{op} against {peer}: wall {ww / pw:.2f}× > {target}×")
        limit = MAX_RSS_MIB.get(op)
        if limit is not None and side == next(s for o, s, *_ in ROWS if o == op):
            ok = wr <= limit
            verdicts.append(f"rss ≤ {limit} MiB {'met' if ok else 'MISSED'}")
            if not ok:
                missed.append(f"{op} peak RSS {wr:.1f} MiB > {limit} MiB")
        print(f"{title:43} {peer:28} {min(len(w), len(p)):>4}  {fmt_time(ww):>11} {fmt_time(pw):>11} {ww / pw:>5.2f}×  "
              f"{fmt_time(wc):>10} {fmt_time(pc):>10} {wc / pc:>5.2f}×  {wr:>6.1f} MiB {pr:>6.1f} MiB  "
              f"{'; '.join(verdicts) or '-'}")
    print("\nwall and cpu (user+system) are medians; rss is the highest peak over the runs.")
    if not divan:
        missed.append("assembly not measured")
    else:
        med = divan_medians(divan)
        if not med:
            missed.append("no rootfs assembly figures found in the divan output")
        else:
            print("\nsecond container from a cached image (benches/rootfs.rs, divan median):")
            for name, ms in sorted(med.items(), key=lambda kv: (int(kv[0].split("x")[0]), int(kv[0].split("x")[1][:-2]))):
                ok = ms < ASSEMBLY_MAX_MS
                print(f"  {name:10} {ms:8.3f} ms  < {ASSEMBLY_MAX_MS:.0f} ms {'met' if ok else 'MISSED'}")
                if not ok:
                    missed.append(f"assembly {name} {ms:.2f} ms ≥ {ASSEMBLY_MAX_MS} ms")
            for layers in sorted({k.split("x")[0] for k in med}, key=int):
                small, big = med.get(f"{layers}x10MB"), med.get(f"{layers}x200MB")
                if small and big:
                    ok = big / small <= FLAT_MAX_RATIO
                    print(f"  {layers} layer(s): 200 MB / 10 MB = {big / small:.2f}× (flat if ≤ {FLAT_MAX_RATIO}×) "
                          f"{'met' if ok else 'MISSED'}")
                    if not ok:
                        missed.append(f"assembly with {layers} layer(s) not flat in image size ({big / small:.2f}×)")
    print("\ntargets missed or not measured: " + ("; ".join(missed) if missed else "none"))


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "run" and a[4] == "--":
        run(a[1], a[2], a[3], a[5:], os.environ.get("MEASURE_LOG", "/dev/null"))
    elif len(a) in (2, 3) and a[0] == "report":
        report(*a[1:])
    else:
        sys.exit(__doc__)
