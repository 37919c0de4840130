#!/usr/bin/env bash
# Runs every fuzz target briefly from the corpus kept in fuzz/corpus/<target> (15 s each by
# default; FUZZ_SECONDS=N to change). New inputs the fuzzer finds go to a temporary directory,
# so the corpus in the repository stays small. A crash fails the script and leaves the input
# under fuzz/artifacts/<target>/.
#
# cargo-fuzz passes -Z flags to rustc, which the stable toolchain accepts with
# RUSTC_BOOTSTRAP=1. The targets are built without a sanitizer (`-s none`): the crate has no
# unsafe code, and an AddressSanitizer build of the whole dependency tree would double the
# build time for nothing it could find there. Overflow checks and debug assertions stay on
# (cargo-fuzz's default), so an arithmetic overflow is a crash.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-15}"
# FUZZ_TARGET_DIR: build somewhere that outlives this checkout (CI clones afresh each run, and
# a cold build of the instrumented tree takes ten minutes or more; a warm one, only the crate).
target_dir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$FUZZ_TARGET_DIR")
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

targets=$(cargo fuzz list)
cargo fuzz build -s none "${target_dir[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
passed=0
for target in $targets; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  if cargo fuzz run -s none "${target_dir[@]}" "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      >"$work/$target.log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^Done' "$work/$target.log" || true
  else
    failed=$((failed + 1))
    echo "FAIL: fuzz target $target" >&2
    tail -n 60 "$work/$target.log" >&2
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
