#!/usr/bin/env bash
# The import graph of harness/src/kernel, one "importer imported" edge per line (files of
# files/, debian/ and ubuntu/ by path, tests and doc comments left out), checked for cycles by
# tsort, which prints "input contains a loop" and fails when there is one.
# Usage: scripts/kernel-import-graph.sh [--edges]   (run from the repository root)
set -euo pipefail
edges="$(
cd harness/src/kernel && for f in $(find . -name '*.rs' ! -path './tests/*' ! -name tests.rs | sort); do
  m=${f#./}; m=${m%.rs}; m=${m%/mod}; d=$(dirname "$m"); case $m in */*) ;; *) d="";; esac
  sed '/#\[cfg(test)\]/,$d' "$f" | grep -vE '^\s*//' | grep -oE '(super|crate::kernel)::\{?[a-z_0-9]+(::[a-z_0-9]+)?' |
    sed -E "s#^crate::kernel::##; s#^super::#${d:+$d/}#; s#::#/#; s#\{##" |
    sed -E 's#^((debian|files|ubuntu)/[a-z_0-9]+).*#\1#; t; s#^([a-z_0-9]+)/.*#\1#' |
    { grep -vxE "$m|self|super" || true; } | sort -u | sed "s#^#$m #"
done
)"
[ "${1:-}" = --edges ] && printf '%s\n' "$edges"
printf '%s\n' "$edges" | tsort >/dev/null
echo "kernel import graph: $(printf '%s\n' "$edges" | wc -l) edges, no cycle"
