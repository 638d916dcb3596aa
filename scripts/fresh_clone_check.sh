#!/usr/bin/env bash
# Follow the README from a fresh clone: clone the repository into an empty temporary folder (nothing
# beside it), then run `make test` and `make demo` there with an empty model cache, printing the wall
# time of each, install included (the first make creates .venv; pip's download cache is kept, as on a
# student's second attempt).
#
# Usage: scripts/fresh_clone_check.sh [REPO]   (default: this checkout's repository; committed work only)
# KEEP=1 keeps the clone for inspection.
set -euo pipefail

repo="${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}"
work="$(mktemp -d)"
clone="$work/p"
export GRPO_LAB_CACHE="$work/cache"   # empty: SmolLM2 is converted from its GGUF again
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

git clone --quiet "$repo" "$clone"
echo "clone: $clone at $(git -C "$clone" rev-parse --short HEAD) (from $repo)"

timed() {  # timed LABEL COMMAND...: run in the clone, log to a file, print the wall time
  local label="$1"; shift
  local start end status=0
  start=$(date +%s)
  (cd "$clone" && "$@") > "$work/$label.log" 2>&1 || status=$?
  end=$(date +%s)
  printf '%-10s %5d s  exit %d  (log: %s)\n' "$label" "$((end - start))" "$status" "$work/$label.log"
  tail -n 3 "$work/$label.log" | sed 's/^/    /'
  return "$status"
}

rc=0
timed make-test make test || rc=1
timed make-demo make demo || rc=1
[ "$rc" = 0 ] || KEEP=1
exit "$rc"
