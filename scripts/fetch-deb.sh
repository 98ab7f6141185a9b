#!/usr/bin/env bash
# fetch-deb.sh PACKAGE DEST [SUITE...]: unpacks Debian's PACKAGE (the first of SUITEs, default
# trixie sid, that has it) into the directory DEST, without adding any suite to apt: the mirror is
# the one the host's apt uses (or KMATRIX_MIRROR), the suite's InRelease is checked with gpgv
# against debian-archive-keyring, its Packages index against the InRelease's sha256, the .deb
# against the index's. The chain of trust of the kernel provider and of fetch-rust-src.sh.
# For a file the host's own suite lacks (bookworm has no ubuntu-keyring). Atomic: DEST appears
# complete or not at all; an existing DEST is kept. Prints the package's version on stdout.
# KMATRIX_DEB_VERSION_PREFIX: take the package only where its upstream version starts with this
# (`1.97.`: the rust-src of a toolchain's line), else look in the next suite.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: fetch-deb.sh PACKAGE DEST [SUITE...]" >&2; exit 2; }
pkg="$1" dest="$2"
shift 2
suites=("$@")
((${#suites[@]})) || suites=(trixie sid)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch-deb: $keyring missing: install debian-archive-keyring" >&2; exit 2; }
if [ -f "$dest/.kmatrix-version" ]; then
  cat "$dest/.kmatrix-version"
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
[ -n "$mirror" ] || { echo "fetch-deb: no Debian mirror in the apt configuration; set KMATRIX_MIRROR" >&2; exit 2; }
mirror="${mirror%/}"
arch="$(dpkg --print-architecture)"

work="$(mktemp -d)"
trap 'rm -rf "$work" "$dest.new.$$"' EXIT
for suite in "${suites[@]}"; do
  curl -fsS "$mirror/dists/$suite/InRelease" -o "$work/InRelease" || continue
  # apt's rule (as kmatrix's kernel provider judges it): one good signature by a key of the
  # keyring and no bad one; a signature by a key the keyring lacks counts for nothing, so gpgv's
  # exit code (non-zero then) is not the verdict. Only the signed text is read after this.
  rm -f "$work/Release"
  status="$(gpgv --status-fd 1 --keyring "$keyring" --output "$work/Release" "$work/InRelease" 2>/dev/null || true)"
  if ! grep -q '^\[GNUPG:\] GOODSIG ' <<<"$status" || grep -q '^\[GNUPG:\] BADSIG ' <<<"$status" || [ ! -s "$work/Release" ]; then
    echo "fetch-deb: $suite InRelease: no good signature by a key of $keyring" >&2; exit 1
  fi
  for index in binary-all binary-"$arch"; do
    want="$(awk -v f="main/$index/Packages.xz" '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3==f{print $1}' "$work/Release")"
    [ -n "$want" ] || continue
    # By hash (Acquire-By-Hash): the index the InRelease names even while the mirror syncs.
    curl -fsS "$mirror/dists/$suite/main/$index/by-hash/SHA256/$want" -o "$work/Packages.xz" \
      || curl -fsS "$mirror/dists/$suite/main/$index/Packages.xz" -o "$work/Packages.xz"
    [ "$(sha256sum "$work/Packages.xz" | cut -d' ' -f1)" = "$want" ] \
      || { echo "fetch-deb: $suite $index Packages.xz: sha256 differs from InRelease's (mirror mid-sync?); skipped" >&2; continue; }
    stanza="$(xz -dc "$work/Packages.xz" | awk -v p="Package: $pkg" '$0==p{f=1} f&&/^$/{f=0} f{print}')"
    [ -n "$stanza" ] || continue
    version="$(sed -n 's/^Version: //p' <<<"$stanza")"
    upstream="${version%%+*}"; upstream="${upstream#*:}"
    if [[ "$upstream" != "${KMATRIX_DEB_VERSION_PREFIX:-}"* ]]; then
      echo "fetch-deb: $suite has $pkg $version, not ${KMATRIX_DEB_VERSION_PREFIX}x; trying the next suite" >&2
      continue
    fi
    file="$(sed -n 's/^Filename: //p' <<<"$stanza")"
    sha="$(sed -n 's/^SHA256: //p' <<<"$stanza")"
    echo "fetch-deb: $pkg $version from $suite" >&2
    curl -fsS "$mirror/$file" -o "$work/p.deb"
    [ "$(sha256sum "$work/p.deb" | cut -d' ' -f1)" = "$sha" ] || { echo "fetch-deb: $file: sha256 mismatch" >&2; exit 1; }
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest.new.$$" && mkdir "$dest.new.$$"
    dpkg-deb -x "$work/p.deb" "$dest.new.$$"
    echo "$pkg $version ($suite, sha256 $sha)" > "$dest.new.$$/.kmatrix-version"
    mv -T "$dest.new.$$" "$dest"
    cat "$dest/.kmatrix-version"
    exit 0
  done
done
echo "fetch-deb: no $pkg in ${suites[*]} on the host's Debian mirror" >&2
exit 1
