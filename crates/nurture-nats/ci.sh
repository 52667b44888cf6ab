#!/usr/bin/env bash
# What CI runs for crates/nurture-nats beyond the workspace-wide clippy and
# `cargo test --workspace` (run from the repository root).
set -euo pipefail

# The scenario installs the pinned nats-server into .tools/nats if it is missing.
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
scripts/scale-out | tee "$out"
summary="$(tail -n 1 "$out")"
python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
keys = ["workers", "partitions", "events", "killed", "effects_expected", "effects_unique",
        "lost", "duplicates", "states_equal", "events_per_sec", "p99_event_to_effect_ms"]
assert list(s) == keys, f"summary keys {list(s)}"
assert s["lost"] == 0, s
assert s["duplicates"] == 0, s
assert s["states_equal"] is True, s
assert s["effects_unique"] == s["effects_expected"], s
assert s["killed"] >= 3, s
assert sorted(s["events_per_sec"]) == ["1", "2", "3"], s
print("nurture-nats scale-out: ok")
PY

# With the server installed, the crate's tests run against it instead of skipping.
NURTURE_NATS_SERVER="$PWD/.tools/nats/venv/bin/nats-server" cargo test -p nurture-nats
