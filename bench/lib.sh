# bench/lib.sh: shared pieces of the bench scripts (sourced, not run).
# Every process started here is recorded in pids and killed by cleanup;
# every file lives under $W, removed on exit.
set -euo pipefail
export PATH="$PATH:/usr/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-6}
CLIENTS=${CLIENTS:-16}
OUTSTANDING=${OUTSTANDING:-1000}
W=$(mktemp -d /tmp/lamina-bench.XXXXXX)
pids=()
cleanups=()

cleanup() {
  set +e
  for c in "${cleanups[@]}"; do eval "$c"; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "bench: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "bench: $t missing (make deps)" >&2; exit 1; }
  done
}

# stop PID: kill one process started here and wait for it.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Ports: fixed, below the ephemeral range, so runs are reproducible.
NSD_PORT=25300 UB_PORT=25301 LA_PORT=25302 ADMIN_PORT=25303
UB_DOT=25311 UB_DOH=25312 LA_DOT=25321 LA_DOH=25322 LA_DOQ=25323
LB_PORT=25331 LB_DOQ=25332 LB_ADMIN=25333

# SRC=head (default) builds the committed tree (reproducible: the commit is
# printed); SRC=tree builds the work tree as it is, uncommitted edits included.
# The Go tools in bench/ come from the same source.
SRC=${SRC:-head}
prepare_src() {
  [ -n "${BSRC:-}" ] && return 0
  if [ "$SRC" = tree ]; then BSRC=$ROOT; echo "# source: work tree $(git -C "$ROOT" rev-parse --short HEAD)+edits"; return 0; fi
  BSRC=$W/src; mkdir -p "$BSRC"
  git -C "$ROOT" archive HEAD | tar -x -C "$BSRC"
  echo "# source: commit $(git -C "$ROOT" rev-parse --short HEAD)"
}
build_lamina() {
  prepare_src
  (cd "$BSRC" && go build -o "$W/lamina" ./cmd/lamina)
}

# Zone bench.test: h0..h9999 (hit and miss sets), served by one NSD on
# ip@NSD_PORT. nsd_files writes the zone, NSD's config and the query files.
start_nsd() { # [ip]
  nsd_files "${1:-127.0.0.1}"
  nsd -d -c "$W/nsd.conf" >"$W/nsd.log" 2>&1 & pids+=($!)
  wait_port $NSD_PORT
}
nsd_files() { # ip
  local ip=$1
  {
    echo '$ORIGIN bench.test.'; echo '$TTL 3600'
    echo '@ IN SOA ns.bench.test. admin.bench.test. 1 3600 600 86400 3600'
    echo '@ IN NS ns.bench.test.'; echo 'ns IN A 127.0.0.1'
    for i in $(seq 0 9999); do echo "h$i IN A 10.$((i/65536%256)).$((i/256%256)).$((i%256))"; done
  } > "$W/bench.zone"
  cat > "$W/nsd.conf" <<CONF
server:
  ip-address: $ip@$NSD_PORT
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$W"
  pidfile: "$W/nsd.pid"
  zonelistfile: "$W/zone.list"
  xfrdfile: "$W/xfrd.state"
  database: ""
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: bench.zone
CONF
  for i in $(seq 0 999); do echo "h$i.bench.test A"; done > "$W/hit.txt"
  for i in $(seq 0 9999); do echo "h$i.bench.test A"; done > "$W/miss.txt"
}

# Self-signed CA and a server certificate for 127.0.0.1 / bench.lamina.test,
# used by both Lamina and Unbound (dnsperf does not verify).
make_certs() {
  [ -f "$W/server.pem" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench-ca -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=bench.lamina.test -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:bench.lamina.test,IP:127.0.0.1\n' > "$W/san.ext"
  openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
    -days 2 -extfile "$W/san.ext" -out "$W/server.pem" 2>/dev/null
}

# start_unbound NAME [tls]: Unbound 1.17, 2 threads, cache on, forwarding
# bench.test to NSD; with "tls" it also serves DoT on UB_DOT and DoH on UB_DOH.
start_unbound() {
  local name=$1 tls=${2:-}
  local conf="$W/unbound-$name.conf"
  {
    cat <<CONF
server:
  interface: 127.0.0.1@$UB_PORT
  port: $UB_PORT
  num-threads: 2
  so-reuseport: yes
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$W"
  pidfile: "$W/unbound-$name.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  msg-cache-size: 64m
  rrset-cache-size: 128m
  incoming-num-tcp: 1000
  outgoing-range: 8192
  num-queries-per-thread: 4096
CONF
    if [ "$tls" = tls ]; then
      make_certs
      cat <<CONF
  interface: 127.0.0.1@$UB_DOT
  interface: 127.0.0.1@$UB_DOH
  tls-port: $UB_DOT
  https-port: $UB_DOH
  tls-service-key: "$W/server.key"
  tls-service-pem: "$W/server.pem"
  http-endpoint: "/dns-query"
CONF
    fi
    cat <<CONF
forward-zone:
  name: "bench.test."
  forward-addr: 127.0.0.1@$NSD_PORT
CONF
  } > "$conf"
  unbound -d -c "$conf" >"$W/unbound-$name.log" 2>&1 & pids+=($!)
  UB_PID=$!
  wait_port $UB_PORT
}

# lamina_config FILE ADMIN CACHE(on|off) UPSTREAM-URL LISTEN-URL...
# Writes an explicit YAML config: every cache setting spelled out, bench.test
# routed to one upstream group (as Unbound's forward-zone), TLS from make_certs.
lamina_config() {
  local file=$1 admin=$2 cache=$3 up=$4; shift 4
  local disable=false; [ "$cache" = off ] && disable=true
  make_certs
  {
    echo "listeners:"
    for u in "$@"; do echo "  - url: $u"; done
    cat <<CONF
upstream_groups:
  - name: bench
    strategy: failover
    upstreams: [$up]
    ca_file: $W/ca.pem
    server_name: bench.lamina.test
routes:
  - zone: bench.test
    group: bench
cache:
  disable: $disable
  size: 100000
  bytes: 67108864
  min_ttl: 0s
  max_ttl: 24h
  serve_stale: false
  stale_while_revalidate: false
  disable_prefetch: false
tls:
  cert_file: $W/server.pem
  key_file: $W/server.key
  state_dir: $W/lamina-state
  ech:
    disable: true
logging:
  level: warn
admin:
  address: 127.0.0.1:$admin
CONF
  } > "$file"
}

# start_lamina NAME CONFIG PORT: runs the built binary; LA_PID is its pid.
start_lamina() {
  local name=$1 conf=$2 port=$3
  "$W/lamina" check -config "$conf" >/dev/null
  "$W/lamina" serve -config "$conf" >"$W/lamina-$name.log" 2>&1 & pids+=($!)
  LA_PID=$!
  wait_port "$port"
}

wait_port() { # port [ip]
  for _ in $(seq 1 100); do
    dig +time=1 +tries=1 -p "$1" @"${2:-127.0.0.1}" h1.bench.test A >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: port $1 not answering" >&2; tail -n 20 "$W"/*.log >&2; exit 1
}

# dnsperf_run LABEL ARGS...: runs dnsperf, keeps its output in $W/LABEL.out,
# prints "qps lost p50_ms p99_ms" (percentiles only when -v was given).
dnsperf_run() {
  local label=$1; shift
  dnsperf "$@" > "$W/$label.out" 2>&1 || true
  echo "## dnsperf $*" >> "$W/dnsperf.log"; grep -v '^>' "$W/$label.out" >> "$W/dnsperf.log"
  local q l p rc
  rc=$(awk -F': *' '/Response codes/ {print $2}' "$W/$label.out")
  case $rc in "NOERROR "*"(100.00%)") ;; *) echo "bench: $label: response codes: ${rc:-none}" >&2 ;; esac
  q=$(awk '/Queries per second/ {print $4}' "$W/$label.out")
  l=$(awk '/Queries lost/ {print $3}' "$W/$label.out")
  p=$(awk '/^> / {print $NF*1000}' "$W/$label.out" | sort -g |
    awk '{a[NR]=$1} END {if (NR) printf "%.3f %.3f", a[int(NR*0.5)+(NR*0.5>int(NR*0.5))], a[int(NR*0.99)+(NR*0.99>int(NR*0.99))]; else printf "- -"}')
  echo "${q:-0} ${l:-?} $p"
}

# CPU time (user+system, clock ticks of 10 ms) of a process, and the count
# of answered queries in a dnsperf output.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
done_q() { awk '/Queries completed/ {print $3}' "$W/$1.out"; }

# cpu_run LABEL PID ARGS...: dnsperf_run, plus the server's CPU µs per
# answered query as a fifth field.
cpu_run() {
  local label=$1 pid=$2 t0 out; shift 2
  t0=$(ticks "$pid")
  out=$(dnsperf_run "$label" "$@")
  echo "$out $(awk -v t=$(( $(ticks "$pid") - t0 )) -v q="$(done_q "$label")" 'BEGIN{printf "%.1f", (q>0)?t*10000/q:0}')"
}

# duel LABEL PEER PEER-ARGS... -- LAMINA-ARGS...: REPEAT (default 3) rounds
# of dnsperf, peer then Lamina, alternating so that load from other work on
# the machine falls on both; prints every round and the medians' ratio.
# The servers' pids are PEER_PID and LAMINA_PID, for CPU per query.
REPEAT=${REPEAT:-3}
duel() {
  local label=$1 peer=$2; shift 2
  local pa=() la=() seen=false
  for a in "$@"; do
    if [ "$a" = -- ]; then seen=true; continue; fi
    if $seen; then la+=("$a"); else pa+=("$a"); fi
  done
  local us=() ls=() r
  for r in $(seq 1 "$REPEAT"); do
    us+=("$(cpu_run "${label// /-}-peer-$r" "$PEER_PID" "${pa[@]}")")
    ls+=("$(cpu_run "${label// /-}-lamina-$r" "$LAMINA_PID" "${la[@]}")")
  done
  printf '  # %s rounds (qps): %s %s | lamina %s\n' "$label" "$peer" \
    "$(printf '%s\n' "${us[@]}" | awk '{printf "%.0f ", $1}')" "$(printf '%s\n' "${ls[@]}" | awk '{printf "%.0f ", $1}')"
  local lm um
  lm=$(median "${ls[@]}") um=$(median "${us[@]}")
  report "$label" "$lm" "$um" "$peer"
  printf '%-30s server CPU µs/query (median rounds): lamina %s, %s %s\n' "" "$(cut -d' ' -f5 <<<"$lm")" "$peer" "$(cut -d' ' -f5 <<<"$um")"
}

# median LINE...: the line whose first field (qps) is the median.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b>0)?a/b:0}'; }

# report LABEL "qps lost ..." "qps lost ..." [peer-name]
report() {
  local lq ll uq ul
  read -r lq ll _ <<<"$2"; read -r uq ul _ <<<"$3"
  printf '%-30s lamina %9.0f qps (lost %s)   %s %9.0f qps (lost %s)   ratio %s\n' \
    "$1" "$lq" "$ll" "${4:-unbound}" "$uq" "$ul" "$(ratio "$lq" "$uq")"
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
