#!/usr/bin/env bash
# Load test of the token endpoint on loopback: starts `claimbridge serve
# --dev` in a throw-away state directory (its own Postgres cluster, dev IdP,
# seeded client and policy) on free ports, runs cmd/loadgen against it for
# DURATION, and stops everything. The generator shares the machine's cores
# with the server: compare figures as ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
dir=$(mktemp -d /tmp/claimbridge-bench.XXXXXX)
chmod 755 "$dir"
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/claimbridge" ./cmd/claimbridge
go build -o "$dir/loadgen" ./cmd/loadgen
"$dir/claimbridge" serve --dev --dev-dir "$dir/state" --dev-postgres-port 54339 \
  --public-addr 127.0.0.1:18080 --admin-addr 127.0.0.1:18081 --dev-idp-addr 127.0.0.1:19090 \
  --log-level warn >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS http://127.0.0.1:18080/readyz >/dev/null || { cat "$dir/serve.log"; exit 1; }
curl -fsS 'http://127.0.0.1:19090/token?ttl=3600' | sed -E 's/.*"access_token":"([^"]+)".*/\1/' >"$dir/subject"
"$dir/loadgen" -serve-baseline 127.0.0.1:18090 http://127.0.0.1:19090/jwks.json &
bpid=$!
trap 'kill $pid $bpid 2>/dev/null || true; wait $pid $bpid 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 0.5
for c in 1 $CONCURRENCY; do
  echo "claimbridge:"
  "$dir/loadgen" -url http://127.0.0.1:18080/oauth2/token -secret-file "$dir/state/client-secret" \
    -subject-file "$dir/subject" -concurrency "$c" -duration "$DURATION"
  echo "baseline (minimal exchange: no framework, no client auth, no policy):"
  "$dir/loadgen" -url http://127.0.0.1:18090/token -secret-file "$dir/state/client-secret" \
    -subject-file "$dir/subject" -concurrency "$c" -duration "$DURATION"
done
