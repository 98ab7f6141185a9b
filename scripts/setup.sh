#!/usr/bin/env bash
# Installs what kmatrix needs on a Debian/Ubuntu host: QEMU, a C toolchain for the guest
# workloads, clang/llvm/libbpf headers for the BPF objects, and the tools the kernel provider uses
# to check signatures. Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

# libxml2-utils (xmllint) and chromium are for the report tests: JUnit schema, HTML in a browser.
# The tracing tools run inside guests through the shared host root (tool.* scenarios, exec,
# shell): perf, trace-cmd, uftrace, bpftool, bpftrace, BCC (tplist, TRACEPOINT_PROBE), gdb and
# strace (the notes' hello sessions), the USDT headers, bash/coreutils for the kernel's
# ftracetest; tmux drives the shell test.
need_pkgs=(qemu-system-x86 gcc libc6-dev clang llvm libbpf-dev zstd gpgv debian-archive-keyring ca-certificates
  libxml2-utils chromium
  linux-perf trace-cmd uftrace bpftool bpftrace bpfcc-tools gdb strace systemtap-sdt-dev busybox-static tmux)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v qemu-system-x86_64 >/dev/null || { echo "setup: qemu-system-x86_64 still missing" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup: cargo missing: install Rust (rustup) first" >&2; exit 1; }
echo "setup: ok ($(qemu-system-x86_64 --version | head -1))" >&2
