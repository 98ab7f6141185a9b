#!/usr/bin/env bash
# Builds what an arm64 guest image carries: the agent (static, aarch64, with the standard library
# built from source by -Zbuild-std, since no prebuilt aarch64 std can be downloaded here) and the C
# workloads (aarch64-linux-gnu-gcc -static). kmatrix runs this on demand when an arm64 kernel is
# requested, so the default x86 `cargo build` does not grow; scripts/setup.sh runs it once too.
#
# Usage: build-guest-arm64.sh OUT_DIR   (writes OUT_DIR/kmatrix-agent and OUT_DIR/workloads/*)
# Needs: a nightly toolchain (KMATRIX_NIGHTLY, default "nightly"), the rust-src setup.sh unpacks
# (KMATRIX_RUST_SRC: its library/ directory), gcc-aarch64-linux-gnu, libc6-dev-arm64-cross.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: $0 OUT_DIR}"
nightly="${KMATRIX_NIGHTLY:-nightly}"
src="${KMATRIX_RUST_SRC:-${XDG_CACHE_HOME:-$HOME/.cache}/kmatrix-toolchain/rust-src/usr/lib/rustlib/src/rust/library}"
cc="${KMATRIX_AARCH64_CC:-aarch64-linux-gnu-gcc}"
objcopy="${KMATRIX_AARCH64_OBJCOPY:-aarch64-linux-gnu-objcopy}"
triple=aarch64-unknown-linux-gnu

[ -f "$src/std/Cargo.toml" ] || { echo "build-guest-arm64: no rust-src at $src: run scripts/setup.sh --arm64 (or set KMATRIX_RUST_SRC)" >&2; exit 2; }
command -v "$cc" >/dev/null || { echo "build-guest-arm64: $cc missing: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2; exit 2; }
mkdir -p "$out/workloads"

# The agent: the same flags as the x86 one (harness/build.rs), its own target dir.
target_dir="${CARGO_TARGET_DIR:-$root/target}/agent-aarch64"
env -u RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_TARGET_DIR \
  __CARGO_TESTS_ONLY_SRC_ROOT="$src" \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$cc" \
  CARGO_ENCODED_RUSTFLAGS="-Ctarget-feature=+crt-static" \
  cargo "+$nightly" build -q --locked -p kmatrix-agent --release --target "$triple" \
  -Zbuild-std=std,panic_abort --target-dir "$target_dir" --manifest-path "$root/Cargo.toml" 2> >(grep -v -e 'statically linked applications requires' -e 'linker stderr' -e 'linker_messages' -e '^ *|' -e '^ *= note' -e '^$' -e 'generated 1 warning' >&2)
bin="$target_dir/$triple/release/kmatrix-agent"
if [ ! -f "$out/kmatrix-agent" ] || [ "$bin" -nt "$out/kmatrix-agent" ]; then
  "$objcopy" --strip-debug "$bin" "$out/kmatrix-agent.tmp" && mv "$out/kmatrix-agent.tmp" "$out/kmatrix-agent"
fi

# The workloads, as harness/build.rs builds the x86 ones (-pg -g, static, no PIE).
for c in "$root"/images/workloads/*.c; do
  name="$(basename "$c" .c)"; name="${name//_/-}"
  dst="$out/workloads/$name"
  if [ ! -f "$dst" ] || [ "$c" -nt "$dst" ] || [ "$root/images/workloads/workload.h" -nt "$dst" ]; then
    "$cc" -static -g -pg -O1 -fno-inline -Wall -o "$dst.tmp" "$c"
    mv "$dst.tmp" "$dst"
  fi
done
