#!/usr/bin/env bash
# System set-up for leastpriv's tracers, enforcers and tests (run by `make install`).
# As root: Debian packages, kernel headers for bcc, tracefs. As a user: only checks.
set -euo pipefail

PKGS=(strace runc apparmor busybox-static gcc gcc-multilib libc6-dev-i386 libseccomp2
      bpfcc-tools python3-bpfcc linux-headers-amd64 libcap2-bin iproute2 systemd util-linux)
PKGS+=(secilc selinux-policy-default policycoreutils semodule-utils libselinux1 libsepol2)   # export --format selinux reads labels/ports with libselinux/libsepol; its tests compile modules with secilc against the reference policy (converted by policycoreutils' hll/pp)
PKGS+=(podman nginx-light redis-server redis-tools sqlite3 git curl python3)   # the generalization suite (tests/test_generalize_suite.py): real programs run under leastpriv run, runc and Podman
PKGS+=(nginx-light redis-server sqlite3 git python3.11 runc binutils)   # reach soundness suite (tests/test_reach.py): real programs learned, then analysed; gcc -Wl,-z,pack-relative-relocs needs binutils >= 2.38
PKGS+=(python3-dev python3-venv)   # make venv builds the venv on Debian's python3 (Makefile: PGO/LTO, faster start): its venv/ensurepip, and Python.h for the ptrace loop's C extension (setup.py); without Python.h the pure-Python loop runs
PKGS+=(wrk)   # make bench: nginx (nginx-light, one worker, CPU 0) serving a 4 KiB file to wrk (CPU 1) on 127.0.0.1, untraced / empty BPF floor / learn --backend ebpf / learn --pid

if [ "$(id -u)" != 0 ]; then
    echo "setup-system: not root: skipping Debian packages, headers and tracefs (ptrace backend only)" >&2
    exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-system: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bcc compiles BPF programs against the running kernel's headers. Kernels without a
# headers package (like this VM's) work with Debian's nearest headers for tracepoint
# programs: link them where bcc looks.
kdir="/lib/modules/$(uname -r)"
if [ ! -e "$kdir/build" ]; then
    hdr=$(ls -d /usr/src/linux-headers-*-amd64 /usr/src/linux-headers-*-arm64 2>/dev/null | sort -V | tail -n1 || true)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$hdr" ]; then
        mkdir -p "$kdir"
        ln -sfn "$hdr" "$kdir/build"
        [ -n "$common" ] && ln -sfn "$common" "$kdir/source"
        echo "setup-system: linked $hdr as $kdir/build (no headers package for $(uname -r))" >&2
    fi
fi

# syscall tracepoints live in tracefs, which this kernel does not mount at boot
if [ ! -e /sys/kernel/tracing/events ] && [ ! -e /sys/kernel/debug/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "setup-system: could not mount tracefs" >&2
fi
exit 0
