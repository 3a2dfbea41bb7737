# Loopback helpers shared by scripts/cluster.sh, bench/load.sh and
# bench/cluster_load.sh (sourced; the caller defines `log`).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_http URL SECONDS [PID LOGFILE]: waits until URL gives any HTTP answer
# (an error status counts: the server listens). With PID, gives up at once
# when that process has exited, printing the tail of LOGFILE.
wait_http() {
  local url=$1 n=$2 pid=${3:-} logfile=${4:-}
  for _ in $(seq 1 $((n * 5))); do
    if python3 -c "
import sys,urllib.request,urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError: pass
" "$url" 2>/dev/null; then return 0; fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "the process behind $url exited:"; [[ -n "$logfile" ]] && tail -n 20 "$logfile" >&2
      return 1
    fi
    sleep 0.2
  done
  log "no answer from $url after ${n}s"; return 1
}
