#!/usr/bin/env bash
# What CI runs for nurture-sqlite beyond the workspace-wide
# `cargo clippy --workspace --all-targets -- -D warnings` and `cargo test --workspace`.
# Run from the repository root. About 2 to 4 minutes on 2 cores after a build.
set -euo pipefail

# The crash test: a child process on SQLite killed with SIGKILL at least 60 times, its
# deliveries and final states compared with an uninterrupted in-memory run.
out=$(cargo run --release -p nurture-sqlite --example crash_test -- --json)
last=$(printf '%s\n' "$out" | tail -n 1)
echo "crash test: $last"
case "$last" in
  \{\"kills\":\ *) ;;
  *) echo "crash test: the last line is not the JSON summary" >&2; exit 1 ;;
esac
kills=$(printf '%s' "$last" | sed -E 's/.*"kills": ([0-9]+).*/\1/')
expected=$(printf '%s' "$last" | sed -E 's/.*"effects_expected": ([0-9]+).*/\1/')
unique=$(printf '%s' "$last" | sed -E 's/.*"effects_delivered_unique": ([0-9]+).*/\1/')
if [ "$kills" -lt 50 ]; then echo "crash test: only $kills kills" >&2; exit 1; fi
if [ "$expected" -eq 0 ] || [ "$expected" -ne "$unique" ]; then
  echo "crash test: $unique unique deliveries for $expected expected effects" >&2; exit 1
fi
printf '%s' "$last" | grep -q '"lost": 0, "unexpected": 0, "states_equal": true}$' || {
  echo "crash test: effects lost or unexpected, or states differ" >&2; exit 1; }

# The quickstart on SQLite (the README's first command, smaller) and in memory.
sqlite=$(cargo run --release --example quickstart -- --contacts 300 --days 30)
printf '%s\n' "$sqlite" | grep -q '^store                SQLite at ' || {
  echo "quickstart: no SQLite store line" >&2; exit 1; }
memory=$(cargo run --release --example quickstart -- --contacts 300 --days 30 --memory)
printf '%s\n' "$memory" | grep -q '^store                in memory' || {
  echo "quickstart --memory: no in-memory store line" >&2; exit 1; }
echo "nurture-sqlite ci: ok"
