#!/usr/bin/env bash
# Unpacks Debian's rust-src matching the nightly toolchain's version line into
# ~/.cache/kmatrix-toolchain/rust-src, for the arm64 agent's -Zbuild-std (scripts/build-guest-arm64.sh).
# The .deb comes through scripts/fetch-deb.sh (the mirror the host's apt uses, InRelease checked
# with gpgv against debian-archive-keyring, its Packages index and the package by sha256: the
# chain of trust the kernel provider uses; nothing is added to apt). Idempotent: an unpacked tree
# of the wanted version is kept.
# KMATRIX_NIGHTLY: the toolchain (default nightly); KMATRIX_RUST_SRC_SUITES: suites to search.
set -euo pipefail
nightly="${KMATRIX_NIGHTLY:-nightly}"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/kmatrix-toolchain/rust-src"
suites=(${KMATRIX_RUST_SRC_SUITES:-sid forky trixie-backports experimental})

release="$(rustc "+$nightly" -V 2>/dev/null | awk '{print $2}')" || true
[ -n "$release" ] || { echo "fetch-rust-src: no $nightly toolchain (rustup toolchain install $nightly)" >&2; exit 2; }
line="${release%.*}"   # 1.97.0-nightly -> 1.97
if [ -f "$dest/.kmatrix-version" ] && [[ "$(cat "$dest/.kmatrix-version")" == "$line".* ]]; then
  echo "fetch-rust-src: rust-src $(cat "$dest/.kmatrix-version") already in $dest (toolchain $release)" >&2
  exit 0
fi

staged="$dest.fetch.$$"
trap 'rm -rf "$staged"' EXIT
KMATRIX_DEB_VERSION_PREFIX="$line." "$(dirname "$0")/fetch-deb.sh" rust-src "$staged" "${suites[@]}" >/dev/null || {
  echo "fetch-rust-src: no rust-src $line.x in ${suites[*]}: install a nightly whose version Debian has, or set KMATRIX_RUST_SRC" >&2
  exit 1
}
# fetch-deb.sh's record is `rust-src VERSION (suite, sha256 ...)`; build-guest-arm64.sh reads the
# upstream version.
version="$(awk '{print $2}' "$staged/.kmatrix-version")"
upstream="${version%%+*}"; upstream="${upstream#*:}"
echo "fetch-rust-src: rust-src $version for $release" >&2
echo "$upstream" > "$staged/.kmatrix-version"
rm -rf "$dest" && mv -T "$staged" "$dest"
