#!/usr/bin/env bash
# Load test of the token endpoint and of /forward-auth on loopback: starts
# `claimbridge serve --dev` in a throw-away state directory (its own Postgres
# cluster, dev IdP, seeded client and policy) on free ports, runs
# cmd/loadgen against it for DURATION per run (and at most its -requests),
# and stops everything. Each figure has a yardstick in the same run: the
# token endpoint a minimal exchange, forward-auth a trivial HTTP handler.
# The generator shares the machine's cores with the server: compare figures
# as ratios within one run. BENCH=token or BENCH=forward-auth runs one half.
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
"$dir/loadgen" -serve-trivial 127.0.0.1:18091 &
tpid=$!
trap 'kill $pid $bpid $tpid 2>/dev/null || true; wait $pid $bpid $tpid 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 0.5
BENCH=${BENCH:-all}
lg() { "$dir/loadgen" -secret-file "$dir/state/client-secret" -duration "$DURATION" "$@"; }
for c in 1 $CONCURRENCY; do
  if [ "$BENCH" != forward-auth ]; then
    echo "token endpoint, concurrency $c:"
    printf '  claimbridge:  '; lg -url http://127.0.0.1:18080/oauth2/token -subject-file "$dir/subject" -concurrency "$c"
    printf '  baseline (minimal exchange: no framework, no client auth, no policy): '
    lg -url http://127.0.0.1:18090/token -subject-file "$dir/subject" -concurrency "$c"
  fi
  if [ "$BENCH" != token ]; then
    echo "forward-auth, concurrency $c:"
    printf '  cache hit (one subject token):  '
    lg -mode forward-auth -url http://127.0.0.1:18080/forward-auth -subject-file "$dir/subject" -concurrency "$c"
    # Subject tokens of 30s: the minted tokens live 30s, within the refresh
    # margin, so none is ever cached: every request mints (one token per
    # worker, so that concurrent misses are not merged into one mint).
    printf '  cache miss (every request mints): '
    lg -mode forward-auth -url http://127.0.0.1:18080/forward-auth -subject-url 'http://127.0.0.1:19090/token?ttl=30' -concurrency "$c"
    printf '  trivial handler (200 and a header, net/http): '
    lg -mode forward-auth -url http://127.0.0.1:18091/forward-auth -subject-file "$dir/subject" -concurrency "$c"
  fi
done
