#!/usr/bin/env bash
# ubuntu-root.sh: an Ubuntu host for kmatrix, for real: an Ubuntu root file system built from
# Ubuntu's archive, with Ubuntu's own packages installed by the repository's scripts/setup.sh, in
# which kmatrix's README commands run as on an Ubuntu machine (docs/hosts.md).
#
#   ubuntu-root.sh build                  build the root (or reuse the cached one); prints its path
#   ubuntu-root.sh path                   prints the cached root's path (after a build under way
#                                         ends); exit 1 when not built
#   ubuntu-root.sh run [--user] [--tree DIR | --clone DIR] -- CMD...
#                                         run CMD (bash -c) in the root, as root or, with --user,
#                                         as the root's ordinary user `kmuser` (no kvm group);
#                                         with --tree, in a copy of DIR's git tree (tracked
#                                         and untracked, unignored files; updated by content) at /tmp/kmatrix-<user>;
#                                         with --clone, in a clean clone of DIR's HEAD there
#
# The root: Ubuntu $KMATRIX_UBUNTU_SUITE (default noble, 24.04) made by mmdebstrap (Debian's,
# installed with apt when missing), components main and universe, pockets release, -updates and
# -security; checked against Ubuntu's archive keyring (the host's ubuntu-keyring, else Debian's
# ubuntu-keyring package fetched and verified by scripts/fetch-deb.sh). The mirror is
# $KMATRIX_UBUNTU_MIRROR, else the default mirror debootstrap's own Ubuntu script names (read at
# run time; no mirror is written in this repository). Cached in <kmatrix cache>/hosts/ubuntu-<suite>
# ($KMATRIX_CACHE, else $XDG_CACHE_HOME/kmatrix, else ~/.cache/kmatrix); built in a temporary
# directory and renamed into place only once setup.sh has succeeded in it, so a failed build
# leaves no root behind. Idempotent; concurrent builders wait on a lock.
#
# Running in the root: a private mount namespace (unshare -m) with /dev (so /dev/kvm when the
# host has it), /proc and /sys bound, the host's Rust toolchain bound read-only at /opt/rust
# (glibc-linked; Ubuntu's newer glibc runs it), then pivot_root into the root, so the root is a
# mount namespace's root and user namespaces (virtiofsd's sandbox, kmatrix's isolation tests)
# work as on a real host, which a chroot forbids. Nothing stays mounted on the host after.
# The Debian mirror kmatrix fetches its kernels from is the host's apt's (or $KMATRIX_MIRROR):
# the root's apt points at Ubuntu's archive, as a GitHub runner's does.
# Needs root on the host (mmdebstrap, mounts).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="${KMATRIX_UBUNTU_SUITE:-noble}"
cache="${KMATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmatrix}"
hosts="$cache/hosts"
root="$hosts/ubuntu-$suite"
user=kmuser
tmp=""
die() { echo "ubuntu-root: $*" >&2; exit 2; }

# The default mirror of debootstrap's Ubuntu script (`default_mirror URL` in a case on $ARCH and
# $SUITE), read by sourcing it with its directives as functions.
ubuntu_mirror() {
  if [ -n "${KMATRIX_UBUNTU_MIRROR:-}" ]; then echo "${KMATRIX_UBUNTU_MIRROR%/}"; return; fi
  local script
  script="$(ls /usr/share/debootstrap/scripts/jammy /usr/share/debootstrap/scripts/gutsy 2>/dev/null | head -1)"
  [ -n "$script" ] || die "no Ubuntu script in /usr/share/debootstrap/scripts (install debootstrap) and no KMATRIX_UBUNTU_MIRROR"
  (
    ARCH="$(dpkg --print-architecture)" SUITE="$suite"
    default_mirror() { echo "$1"; exit 0; }
    for f in mirror_style download_style finddebs_style variants keyring force_md5 doing_variant error warning info; do
      eval "$f() { :; }"
    done
    # shellcheck disable=SC1090
    . "$script"
    exit 1
  ) | head -1
}

# Ubuntu's archive keyring: the host's, else Debian's ubuntu-keyring package, verified.
ubuntu_keyring() {
  local k=/usr/share/keyrings/ubuntu-archive-keyring.gpg
  if [ -r "$k" ]; then echo "$k"; return; fi
  "$here/fetch-deb.sh" ubuntu-keyring "$hosts/ubuntu-keyring" trixie sid >&2
  echo "$hosts/ubuntu-keyring$k"
}

need_host_tools() {
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ -d /usr/share/debootstrap/scripts ] || [ -n "${KMATRIX_UBUNTU_MIRROR:-}" ] || missing+=(debootstrap)
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v curl >/dev/null || missing+=(curl)
  command -v gpgv >/dev/null || missing+=(gpgv)
  if ((${#missing[@]})); then
    echo "ubuntu-root: installing ${missing[*]} (the host's own apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

# The host's own extra trusted certificate authorities (/usr/local/share/ca-certificates: a
# network that inspects TLS, as here), so the root reaches what the host reaches (crates.io).
sync_cas() {
  local r="$1" dir=/usr/local/share/ca-certificates
  compgen -G "$dir/*.crt" >/dev/null || return 0
  if ! diff -rq "$dir" "$r$dir" >/dev/null 2>&1; then
    mkdir -p "$r$dir"
    cp "$dir"/*.crt "$r$dir/"
    chroot "$r" update-ca-certificates >/dev/null 2>&1 || echo "ubuntu-root: update-ca-certificates failed in $r" >&2
  fi
}

# in_root ROOT AS_USER CWD CMD: run CMD (bash -c) in ROOT, see the header.
in_root() {
  local r="$1" as_user="$2" cwd="$3" cmd="$4"
  sync_cas "$r"
  local rustup_home rustup_bin debian_mirror
  rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
  rustup_bin="$(command -v rustup)" || die "no rustup on the host: the root borrows the host's Rust toolchains"
  [ -d "$rustup_home/toolchains" ] || die "no toolchains in $rustup_home (RUSTUP_HOME)"
  # rustup's proxies, by name, in the root (the binary itself is bound over the first).
  mkdir -p "$r/opt/rustup" "$r/opt/rustup-bin"
  touch "$r/opt/rustup-bin/rustup"
  for p in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver rust-gdb; do
    ln -sfn rustup "$r/opt/rustup-bin/$p"
  done
  debian_mirror="${KMATRIX_MIRROR:-$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)}"
  [ -n "$debian_mirror" ] || debian_mirror="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -1 || true)"
  local home=/root uid=0
  if [ "$as_user" = 1 ]; then home="/home/$user" uid="$(chroot "$r" id -u "$user")"; fi
  local envs=(
    "PATH=/opt/rustup-bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "RUSTUP_HOME=/opt/rustup"
    "HOME=$home" "USER=$([ "$as_user" = 1 ] && echo "$user" || echo root)" "LANG=C.UTF-8" "TERM=dumb"
    "KMATRIX_MIRROR=$debian_mirror"
  )
  [ "$as_user" = 1 ] || envs+=("CARGO_HOME=/usr/local/cargo")
  # Anything else the caller set for kmatrix (KMATRIX_ACCEL, ...), but not host paths.
  while IFS='=' read -r k v; do
    case "$k" in KMATRIX_CACHE|KMATRIX_MIRROR|KMATRIX_UBUNTU_*) ;; KMATRIX_*|CARGO_TERM_*|RUST_BACKTRACE) envs+=("$k=$v") ;; esac
  done < <(env)
  local drop=()
  [ "$as_user" = 1 ] && drop=(setpriv "--reuid=$uid" "--regid=$uid" --init-groups)
  unshare --mount --propagation private -- /bin/bash -euc '
    r="$1" rustup_home="$2" rustup_bin="$3"; shift 3
    mount --bind "$r" "$r"
    mount --rbind /dev "$r/dev"
    mount -t proc proc "$r/proc"
    mount --rbind /sys "$r/sys"
    mkdir -p "$r/.oldroot"
    mount --bind "$rustup_home" "$r/opt/rustup"
    mount -o remount,bind,ro "$r/opt/rustup"
    mount --bind "$rustup_bin" "$r/opt/rustup-bin/rustup"
    mount -o remount,bind,ro "$r/opt/rustup-bin/rustup"
    cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    cd "$r"
    pivot_root . .oldroot
    umount -l /.oldroot
    cd /
    exec "$@"
  ' ubuntu-root "$r" "$rustup_home" "$rustup_bin" "${drop[@]}" env -i "${envs[@]}" /bin/bash -c 'cd "$1" && shift && exec /bin/bash -c "$@"' in-root "$cwd" "$cmd"
}

# clone_head ROOT SRC OWNER: a clean clone of SRC's HEAD (committed work only) at
# ROOT/tmp/kmatrix-OWNER (one per user: root's and kmuser's jobs may run at once).
clone_head() {
  local r="$1" src="$2" owner="$3"
  git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1 || die "--clone $src: not a git work tree"
  rm -rf "$r/tmp/kmatrix-$owner"
  git clone -q --no-hardlinks "$src" "$r/tmp/kmatrix-$owner"
  chroot "$r" chown -R "$owner:" "/tmp/kmatrix-$owner"
}

# copy_tree ROOT SRC OWNER: SRC's git tree (tracked and untracked, unignored files, as they are
# now) at ROOT/tmp/kmatrix-OWNER, owned by OWNER. The copy is kept between runs and updated by
# content: a file whose bytes changed (or is new) is written with the time of this copy, an
# unchanged one keeps its time, a file gone from SRC goes. So the build kept in the root's own
# target directory rebuilds exactly what changed, whichever tree it was last built from (copying
# SRC's times instead let a file edited before the last build from another tree look older than
# that build: cargo kept a stale kmatrix-proto, and the agent did not compile).
copy_tree() {
  local r="$1" src="$2" owner="$3" dest stage f
  dest="$r/tmp/kmatrix-$owner"
  git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1 || die "--tree $src: not a git work tree"
  stage=$(mktemp -d)
  (cd "$src" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
    | tar -xf - -C "$stage"
  mkdir -p "$dest"
  while IFS= read -r -d '' f; do
    if [ -L "$stage/$f" ] || ! cmp -s "$stage/$f" "$dest/$f"; then
      mkdir -p "$dest/$(dirname "$f")"
      rm -f "$dest/$f"
      cp -P --preserve=mode "$stage/$f" "$dest/$f"
    fi
  done < <(cd "$stage" && find . \( -type f -o -type l \) -print0)
  while IFS= read -r -d '' f; do
    [ -e "$stage/$f" ] || [ -L "$stage/$f" ] || rm -f "$dest/$f"
  done < <(cd "$dest" && find . \( -type f -o -type l \) -not -path './target/*' -print0)
  rm -rf "$stage"
  chroot "$r" chown -R "$owner:" "/tmp/kmatrix-$owner"
}

# base DIR: the bootstrapped root (mmdebstrap), before setup.sh; kept apart (DIR, marked when
# complete) so a setup.sh that fails does not cost the bootstrap again.
base() {
  local b="$1" mirror keyring t0=$SECONDS
  [ -f "$b/.kmatrix-base" ] && return
  rm -rf "$b"
  mirror="$(ubuntu_mirror)"
  [ -n "$mirror" ] || die "no Ubuntu mirror: debootstrap's script names none for $suite; set KMATRIX_UBUNTU_MIRROR"
  keyring="$(ubuntu_keyring)"
  echo "ubuntu-root: bootstrapping Ubuntu $suite in $b (mmdebstrap)" >&2
  mmdebstrap --mode=root --variant=apt --components=main,universe --keyring="$keyring" \
    --include=ca-certificates,git,curl,passwd,sudo,util-linux,mount,xz-utils,tar \
    "$suite" "$b" \
    "deb $mirror $suite main universe" \
    "deb $mirror $suite-updates main universe" \
    "deb $mirror $suite-security main universe" >&2
  # No services start in the root (there is no init); packages' postinst scripts ask this.
  printf '#!/bin/sh\nexit 101\n' >"$b/usr/sbin/policy-rc.d"
  chmod +x "$b/usr/sbin/policy-rc.d"
  chroot "$b" useradd -m -s /bin/bash "$user"
  {
    echo "suite=$suite"
    echo "keyring=$(cat "$hosts/ubuntu-keyring/.kmatrix-version" 2>/dev/null || echo "$keyring")"
    echo "bootstrapped=$(date -u +%FT%TZ) in $((SECONDS - t0)) s"
  } >"$b/.kmatrix-base"
}

build() {
  if [ -f "$root/.kmatrix-root" ]; then echo "$root"; return; fi
  [ "$(id -u)" = 0 ] || die "building the Ubuntu root needs root (mmdebstrap, mounts): run it with sudo"
  need_host_tools
  mkdir -p "$hosts"
  exec 9>"$hosts/ubuntu-$suite.lock"
  flock 9
  if [ -f "$root/.kmatrix-root" ]; then echo "$root"; return; fi
  local stale t0=$SECONDS
  tmp="$hosts/ubuntu-$suite.tmp.$$"
  # What failed builds left (their mounts died with their namespaces).
  for stale in "$hosts/ubuntu-$suite".tmp.*; do
    [ -d "$stale" ] || continue
    findmnt -rn -o TARGET | grep -q "^$stale" && die "$stale has mounts; unmount them first"
    rm -rf "$stale"
  done
  # Our mounts live in private namespaces, gone when this runs; never remove a tree something
  # is still mounted in.
  trap 'findmnt -rn -o TARGET | grep -q "^$tmp" || rm -rf "$tmp"' EXIT
  base "$hosts/ubuntu-$suite.base"
  cp -a "$hosts/ubuntu-$suite.base" "$tmp"
  echo "ubuntu-root: scripts/setup.sh in the root" >&2
  # Ubuntu's own packages, installed by the repository's setup script as an Ubuntu user would;
  # arm64 guests (not in the default matrix) are left out.
  copy_tree "$tmp" "$here/.." root
  in_root "$tmp" 0 /tmp/kmatrix-root "KMATRIX_SETUP_ARM64=0 ./scripts/setup.sh" >&2
  rm -rf "$tmp/tmp/kmatrix-root"
  { cat "$tmp/.kmatrix-base"; echo "set up=$(date -u +%FT%TZ) in $((SECONDS - t0)) s"; } >"$tmp/.kmatrix-root"
  mv -T "$tmp" "$root"
  trap - EXIT
  echo "ubuntu-root: Ubuntu $suite ready in $((SECONDS - t0)) s" >&2
  echo "$root"
}

case "${1:-}" in
  build) build ;;
  path)
    # A build under way (CI starts one in the background) is waited for.
    [ -f "$hosts/ubuntu-$suite.lock" ] && flock "$hosts/ubuntu-$suite.lock" true
    [ -f "$root/.kmatrix-root" ] && echo "$root" || { echo "ubuntu-root: $root not built (ubuntu-root.sh build)" >&2; exit 1; }
    ;;
  run)
    shift
    as_user=0 tree="" how=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --user) as_user=1; shift ;;
        --tree) tree="${2:?--tree needs a directory}" how=copy_tree; shift 2 ;;
        --clone) tree="${2:?--clone needs a directory}" how=clone_head; shift 2 ;;
        --) shift; break ;;
        *) die "run: unknown option $1 (run [--user] [--tree DIR | --clone DIR] -- CMD...)" ;;
      esac
    done
    [ $# -gt 0 ] || die "run: no command (run [--user] [--tree DIR] -- CMD...)"
    [ "$(id -u)" = 0 ] || die "entering the Ubuntu root needs root (mounts, pivot_root): run it with sudo"
    [ -f "$root/.kmatrix-root" ] || die "$root not built: run ubuntu-root.sh build first"
    cwd=/
    if [ -n "$tree" ]; then
      owner="$([ "$as_user" = 1 ] && echo "$user" || echo root)"
      "$how" "$root" "$tree" "$owner"
      cwd="/tmp/kmatrix-$owner"
    fi
    in_root "$root" "$as_user" "$cwd" "$*"
    ;;
  *) die "usage: ubuntu-root.sh build | path | run [--user] [--tree DIR] -- CMD..." ;;
esac
