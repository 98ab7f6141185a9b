#!/bin/bash
# Open /dev/kvm to the user running this (a CI runner's), as vmtest-action does: a udev rule,
# so QEMU can use KVM without root. Run by the Action (action.yml) and by the generated
# workflow's partition jobs; the one place this is written. Where it cannot be done (no sudo for
# this user, no udev), kmatrix runs its guests under TCG and says so: a runner without KVM is
# slower, not broken. Prints GitHub's ::warning:: lines; always exits 0.
set -euo pipefail
if [ -e /dev/kvm ] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  if [ "$(id -u)" = 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "::warning::/dev/kvm is not open to $(id -un) and there is no sudo to open it: guests run under TCG"
    exit 0
  fi
  echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' |
    "${as_root[@]}" tee /etc/udev/rules.d/99-kmatrix-kvm.rules
  if command -v udevadm >/dev/null; then
    "${as_root[@]}" udevadm control --reload-rules || true
    "${as_root[@]}" udevadm trigger --name-match=kvm || true
  fi
  if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
    echo "::warning::/dev/kvm is still not open to $(id -un) (no udev to apply the rule?): guests run under TCG"
  fi
fi
