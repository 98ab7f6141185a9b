#!/usr/bin/env bash
# Unpacks Debian's rust-src matching the nightly toolchain's version line into
# ~/.cache/kmatrix-toolchain/rust-src, for the arm64 agent's -Zbuild-std (scripts/build-guest-arm64.sh).
# The .deb comes from the mirror the host's apt uses, found through a suite's InRelease (checked
# with gpgv against debian-archive-keyring), its Packages index (sha256 from InRelease) and the
# package's sha256 (from the index): the chain of trust the kernel provider uses. Nothing is added
# to apt. Idempotent: an unpacked tree of the wanted version is kept.
# KMATRIX_NIGHTLY: the toolchain (default nightly); KMATRIX_RUST_SRC_SUITES: suites to search.
set -euo pipefail
nightly="${KMATRIX_NIGHTLY:-nightly}"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/kmatrix-toolchain/rust-src"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
suites=(${KMATRIX_RUST_SRC_SUITES:-sid forky trixie-backports experimental})

release="$(rustc "+$nightly" -V 2>/dev/null | awk '{print $2}')" || true
[ -n "$release" ] || { echo "fetch-rust-src: no $nightly toolchain (rustup toolchain install $nightly)" >&2; exit 2; }
line="${release%.*}"   # 1.97.0-nightly -> 1.97
if [ -f "$dest/.kmatrix-version" ] && [[ "$(cat "$dest/.kmatrix-version")" == "$line".* ]]; then
  echo "fetch-rust-src: rust-src $(cat "$dest/.kmatrix-version") already in $dest (toolchain $release)" >&2
  exit 0
fi

# The mirror apt uses: deb822 URIs: lines, else a one-line `deb URL suite` entry.
mirror="${KMATRIX_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)"
fi
if [ -z "$mirror" ]; then
  mirror="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)"
fi
[ -n "$mirror" ] || { echo "fetch-rust-src: no Debian mirror in the apt configuration; set KMATRIX_MIRROR" >&2; exit 2; }
mirror="${mirror%/}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for suite in "${suites[@]}"; do
  curl -fsS "$mirror/dists/$suite/InRelease" -o "$work/InRelease" || continue
  gpgv --keyring "$keyring" "$work/InRelease" 2>/dev/null || { echo "fetch-rust-src: $suite InRelease: bad signature" >&2; exit 1; }
  want="$(awk '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3=="main/binary-all/Packages.xz"{print $1}' "$work/InRelease")"
  [ -n "$want" ] || continue
  curl -fsS "$mirror/dists/$suite/main/binary-all/Packages.xz" -o "$work/Packages.xz"
  [ "$(sha256sum "$work/Packages.xz" | cut -d' ' -f1)" = "$want" ] || { echo "fetch-rust-src: $suite Packages.xz: sha256 mismatch" >&2; exit 1; }
  xz -dc "$work/Packages.xz" > "$work/Packages"
  stanza="$(awk '/^Package: rust-src$/{p=1} p{print} p&&/^$/{exit}' "$work/Packages")"
  version="$(sed -n 's/^Version: //p' <<<"$stanza")"
  upstream="${version%%+*}"; upstream="${upstream#*:}"
  if [[ "$upstream" != "$line".* ]]; then
    echo "fetch-rust-src: $suite has rust-src $version, not $line.x; trying the next suite" >&2
    continue
  fi
  file="$(sed -n 's/^Filename: //p' <<<"$stanza")"
  sha="$(sed -n 's/^SHA256: //p' <<<"$stanza")"
  echo "fetch-rust-src: rust-src $version from $suite for $release" >&2
  curl -fsS "$mirror/$file" -o "$work/rust-src.deb"
  [ "$(sha256sum "$work/rust-src.deb" | cut -d' ' -f1)" = "$sha" ] || { echo "fetch-rust-src: $file: sha256 mismatch" >&2; exit 1; }
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest.new" && mkdir "$dest.new"
  dpkg-deb -x "$work/rust-src.deb" "$dest.new"
  echo "$upstream" > "$dest.new/.kmatrix-version"
  rm -rf "$dest" && mv "$dest.new" "$dest"
  exit 0
done
echo "fetch-rust-src: no rust-src $line.x in ${suites[*]}: install a nightly whose version Debian has, or set KMATRIX_RUST_SRC" >&2
exit 1
