#!/usr/bin/env python3
"""Helper of benches/peers.sh: turn a `runc spec` config.json into the "full isolation" bundle both
runtimes run: `/bin/true`, no terminal, Docker's 14 default capabilities, Docker's default seccomp
profile resolved into OCI form the way Docker does it for runc, and a memory and pids limit (so a
cgroup is set up with limits).

  bundle.py CONFIG_JSON DOCKER_SECCOMP_JSON
"""
import json
import os
import platform
import sys

DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}


def kernel_at_least(minimum):
    have = [int(x) for x in platform.release().split("-")[0].split(".")[:2]]
    want = [int(x) for x in minimum.split(".")[:2]]
    return have >= want


def resolve(profile, caps, arch):
    """moby's profile (includes/excludes on caps, arches, minKernel) -> OCI linux.seccomp."""
    arches = []
    for m in profile.get("archMap", []):
        if m["architecture"] == SCMP_ARCH[arch]:
            arches = [m["architecture"], *m.get("subArchitectures", [])]
    syscalls = []
    for s in profile["syscalls"]:
        inc, exc = s.get("includes") or {}, s.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not kernel_at_least(inc["minKernel"]):
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        rule = {k: s[k] for k in ("names", "action", "errnoRet", "args") if s.get(k) is not None}
        syscalls.append(rule)
    out = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": syscalls}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out


def main(config_path, profile_path):
    arch = GO_ARCH.get(os.uname().machine)
    if arch is None:
        sys.exit(f"bundle.py: no seccomp architecture mapping for {os.uname().machine}")
    config = json.load(open(config_path))
    process = config["process"]
    process["args"] = ["/bin/true"]
    process["terminal"] = False
    process["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    linux = config["linux"]
    linux["seccomp"] = resolve(json.load(open(profile_path)), DOCKER_CAPS, arch)
    linux["resources"] = {**linux.get("resources", {}), "memory": {"limit": 512 << 20}, "pids": {"limit": 1024}}
    kinds = {ns["type"] for ns in linux.get("namespaces", [])}
    missing = {"pid", "network", "ipc", "uts", "mount", "cgroup"} - kinds
    linux.setdefault("namespaces", []).extend({"type": t} for t in sorted(missing))
    json.dump(config, open(config_path, "w"), indent=2)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
