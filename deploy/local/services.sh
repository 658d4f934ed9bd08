# The five services, run in the foreground by deploy/local/supervise.py (`stack up`), which
# writes var/run/supervise.pid and var/run/<service>.pid, and logs to var/log/<service>.log.

SERVICES=(ingest:8000 metadata:8001 dedup:8002 tagging:8003 notify:8004)
SUPERVISE_MAIN=supervise.py

services_stop() {
  # The supervisor stops its services (SIGTERM, 30 s, SIGKILL) before it exits.
  terminate supervise "$SUPERVISE_MAIN" 40
  # A service outlives its supervisor only when that was killed outright.
  local entry pid_file name
  for entry in "${SERVICES[@]}"; do
    terminate "${entry%:*}" "darkroom.${entry%:*}"
  done
  for pid_file in "$RUN"/*-[0-9]*.pid; do # replicas (up --replicas N): <service>-<k>.pid
    [[ -e $pid_file ]] || continue
    name=$(basename "$pid_file" .pid)
    terminate "$name" "darkroom.${name%-*}"
  done
}

services_status() {
  local pid entry
  if pid=$(pid_of supervise "$SUPERVISE_MAIN"); then
    printf '%-10s %-14s %-15s  pid %s\n' supervise up "" "$pid"
  else
    printf '%-10s %s\n' supervise down
  fi
  for entry in "${SERVICES[@]}"; do
    report "${entry%:*}" "darkroom.${entry%:*}" "${entry#*:}"
  done
}
