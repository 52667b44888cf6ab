#!/usr/bin/env bash
# What CI runs for nurture-lab beyond workspace-wide clippy and `cargo test --workspace`:
# the CLI contracts on committed fixtures, and the real-data fit when ../shared exists.
# Run from the repository root.
set -euo pipefail

cargo build --release -p nurture-lab
lab=target/release/nurture-lab
fixtures=crates/nurture-lab/tests/fixtures
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# lint: 0 without findings, 1 with findings, 2 on unreadable input.
"$lab" lint "$fixtures/lint/clean.json"
set +e
"$lab" lint "$fixtures/lint/flawed.json" >/dev/null; flawed=$?
"$lab" lint "$fixtures/lint/absent.json" >/dev/null 2>&1; absent=$?
set -e
[ "$flawed" -eq 1 ] || { echo "lint on flawed.json exited $flawed, expected 1"; exit 1; }
[ "$absent" -eq 2 ] || { echo "lint on a missing file exited $absent, expected 2"; exit 1; }

# The exported model of a fixture fit lints and scores.
"$lab" fit --csv "$fixtures/contacts.csv" --sep ';' --label Outcome --positive yes --missing Select \
  --folds 3 --seed 1 --out "$out/fixture" --json | tail -n 1 | python3 -c 'import json,sys; json.loads(sys.stdin.read())'
"$lab" evaluate --doc "$out/fixture/model.json" --csv "$fixtures/contacts.csv" --sep ';' --label Outcome \
  --positive yes --missing Select --out "$out/fixture-eval" --json | tail -n 1 | python3 -c 'import json,sys; json.loads(sys.stdin.read())'
"$lab" diff --live "$fixtures/history/live.json" --candidate "$fixtures/history/candidate.json" \
  --events "$fixtures/history/events.jsonl" --contacts "$fixtures/history/contacts.jsonl" --json >/dev/null

# Real data: the leads fit must keep cv_auc >= 0.90.
leads=../shared/data/leads/leads.csv
if [ -f "$leads" ]; then
  line=$("$lab" fit --csv "$leads" --label Converted --positive 1 --missing Select --folds 5 --seed 1 \
    --drop "Tags,Lead Quality,Lead Profile,Asymmetrique Activity Index,Asymmetrique Profile Index,Asymmetrique Activity Score,Asymmetrique Profile Score,Last Notable Activity" \
    --out "$out/leads" --json | tail -n 1)
  echo "$line"
  echo "$line" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert d["cv_auc"] >= 0.90, d'
else
  echo "skipped: $leads is absent (real data lives outside the repository)"
fi
echo "nurture-lab ci: ok"
