#!/usr/bin/env bash
# Load test of the acceptance path: voice notices accepted per second, end to end over
# HTTP, each one durably committed (group commit) before its answer.
#
# Usage: benches/accept_load.sh [sqlite|postgres] [seconds] [connections]
# (VOICEPAAS_BIN: the server binary, default target/release/voicepaas)
# Needs: wrk (Debian package `wrk`), a release build (cargo build --release), python3;
# for postgres a server on 127.0.0.1:5432 (user postgres, trust auth). VOICEPAAS_LOG and
# VOICEPAAS_LOG_FORMAT pass through (default warn: no access log).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-20}
connections=${3:-64}
bin=${VOICEPAAS_BIN:-target/release/voicepaas}
port=18181
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

case "$backend" in
  sqlite) export DATABASE_URL="sqlite://$work/bench.db" ;;
  postgres)
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS voicepaas_bench" -c "CREATE DATABASE voicepaas_bench"
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/voicepaas_bench" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export VOICEPAAS_LISTEN="127.0.0.1:$port" VOICEPAAS_ADMIN_TOKEN=bench VOICEPAAS_LOG="${VOICEPAAS_LOG:-warn}"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

account=$($bin account create --name bench)
sid=$(echo "$account" | json '["accountSid"]')
token=$(echo "$account" | json '["authToken"]')
app=$($bin app create --account "$sid" --name bench | json '["appId"]')

$bin serve & server=$!
for _ in $(seq 1 50); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf -X PATCH "localhost:$port/admin/accounts/$sid" -H 'Authorization: Bearer bench' \
  -H 'Content-Type: application/json' -d '{"cps":10000,"maxQueuedCalls":100000000}' >/dev/null

body='{"appid":"'$app'","to":"13800138000","contents":[{"type":"digits","content":"123"},{"type":"money","content":"2.14"}],"userdata":"bench"}'
auth="Basic $(printf '%s:%s' "$sid" "$token" | base64 -w0)"
echo "== $backend, $connections connections, ${seconds}s, $(nproc) cores, $(date -u +%FT%TZ)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s benches/notice.lua "http://127.0.0.1:$port" -- "/Accounts/$sid/VoiceNotices" "$auth" "$body" | tee "$work/wrk.out"
# The same server's /healthz rate right after: the anchor the notice rate is compared with
# (these machines vary by up to 3x from one to the next).
healthz=$(wrk -t2 -c"$connections" -d"${seconds}s" "http://127.0.0.1:$port/healthz" | grep -oE 'Requests/sec: *[0-9.]+' | grep -oE '[0-9.]+$')
notices=$(grep -oE 'Requests/sec: *[0-9.]+' "$work/wrk.out" | grep -oE '[0-9.]+$')
echo "healthz: $healthz req/s; notices/healthz: $(python3 -c "print(round($notices / $healthz, 3))")"
kill $server; wait $server 2>/dev/null || true
case "$backend" in
  sqlite) stored=$(python3 -c "import sqlite3; print(sqlite3.connect('$work/bench.db').execute('select count(*) from calls').fetchone()[0])") ;;
  postgres) stored=$(psql -At -h 127.0.0.1 -U postgres -d voicepaas_bench -c "select count(*) from calls") ;;
esac
answered=$(grep -oE '^ *[0-9]+ requests in' "$work/wrk.out" | grep -oE '[0-9]+')
echo "requests answered: $answered, calls stored: $stored (stored >= answered: every answer was an acceptance)"
[ "$stored" -ge "$answered" ]
