# Shared by the deploy/local scripts: where things live, and how a component is installed,
# started, waited for, reported and stopped. Sourced by deploy/local/stack, never run alone.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/deploy/local
VAR=$ROOT/var   # git-ignored: everything the stack downloads, stores, logs
LOGS=$VAR/log
RUN=$VAR/run
JARS=$VAR/lib

say() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# --- installing ------------------------------------------------------------------------------

# apt_install PACKAGE...: Debian packages (as root, or through sudo for a developer).
apt_install() {
  local sudo=
  ((EUID == 0)) || sudo=sudo
  say "installing $* with apt-get"
  [[ -n ${APT_UPDATED:-} ]] || $sudo apt-get update -qq
  APT_UPDATED=1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# java_bin: the path of a Java 17 or newer (Kafka 4 needs 17).
java_bin() {
  local java version
  for java in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java)" \
    /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [[ -x $java ]] || continue
    version=$("$java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
    ((${version:-0} >= 17)) && { say "$java"; return 0; }
  done
  return 1
}

# fetch_jars NAME: the jars of deploy/local/NAME/pom.xml, copied by Maven into var/lib/NAME.
# A stamp keeps the pom's checksum: while the pom is unchanged, a rerun does not even run Maven.
fetch_jars() {
  local pom=$HERE/$1/pom.xml dest=$JARS/$1 sum
  sum=$(sha256sum <"$pom")
  [[ -f $dest/.pom.sha256 && $(<"$dest/.pom.sha256") == "$sum" ]] && return 0
  say "$1: resolving its jars with Maven into var/lib/$1 (the first run downloads them)"
  rm -rf "$dest"
  mkdir -p "$LOGS"
  mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$dest" >"$LOGS/maven-$1.log" 2>&1 || start_failed "maven-$1" "failed"
  say "$sum" >"$dest/.pom.sha256"
}

# "${UV_RUN[@]}" COMMAND...: runs in the project's virtualenv, which `install` has synced.
UV_RUN=(uv run --no-sync --project "$ROOT")

# --- processes -------------------------------------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  [[ -n $1 ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_of NAME MARKER: prints the pid in var/run/NAME.pid if that process is alive and its
# command line holds MARKER, so that a stale file whose pid was reused is never taken for ours.
pid_of() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" && say "$pid"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# claim_port NAME PORT: fail clearly when another program already holds a port NAME needs.
claim_port() {
  port_open "$2" || return 0
  local holder
  holder=$(ss -Hltnp "sport = :$2" 2>/dev/null | grep -o 'users:.*' | head -n 1)
  die "$1: port $2 is taken by another program${holder:+ ($holder)}, not this stack's $1. Stop it and retry."
}

# spawn NAME COMMAND...: run COMMAND in the background, in a session of its own (Ctrl-C in a
# terminal does not reach it; stop signals its whole process group), its pid in var/run/NAME.pid
# and its output appended to var/log/NAME.log.
spawn() {
  local name=$1 i
  shift
  mkdir -p "$LOGS" "$RUN"
  rm -f "$RUN/$name.pid"
  printf '\n==== %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$LOGS/$name.log"
  setsid bash -c 'echo $$ >"$0" && exec "$@"' "$RUN/$name.pid" "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
  for ((i = 0; i < 50; i++)); do
    [[ -s $RUN/$name.pid ]] && return 0
    sleep 0.1
  done
  die "$name: could not be launched; see var/log/$name.log"
}

# wait_for NAME MARKER SECONDS PROBE...: retry PROBE until it succeeds; fail, showing the end of
# NAME's log, when NAME's process dies first or SECONDS pass.
wait_for() {
  local name=$1 marker=$2 seconds=$3 deadline=$((SECONDS + $3))
  shift 3
  until "$@"; do
    pid_of "$name" "$marker" >/dev/null || start_failed "$name" "exited while starting"
    ((SECONDS < deadline)) || start_failed "$name" "did not answer within ${seconds}s"
    sleep 0.5
  done
}

start_failed() {
  tail -n 30 "$LOGS/$1.log" >&2
  die "$1 $2; its log is var/log/$1.log (last lines above)"
}

# terminate NAME MARKER [SECONDS]: SIGTERM to NAME's process group, SIGKILL after SECONDS (30).
terminate() {
  local name=$1 grace=${3:-30} pid i
  if ! pid=$(pid_of "$1" "$2"); then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  say "stopping $name (pid $pid)"
  signal TERM "$pid"
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "$name did not stop within ${grace}s; killing it"
    signal KILL "$pid"
    sleep 0.5
  fi
  rm -f "$RUN/$name.pid"
}

# signal SIG PID: to the process group PID leads (everything spawn started), else to PID alone.
signal() { kill -"$1" -- "-$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null || true; }

# report NAME MARKER PORT: one line of `status`: up when the process lives and its port answers.
report() {
  local pid state
  if pid=$(pid_of "$1" "$2"); then
    if port_open "$3"; then state=up; else state="not answering"; fi
    printf '%-10s %-14s 127.0.0.1:%-5s  pid %s\n' "$1" "$state" "$3" "$pid"
  elif port_open "$3"; then
    printf '%-10s %-14s 127.0.0.1:%-5s  held by another program\n' "$1" down "$3"
  else
    printf '%-10s %-14s 127.0.0.1:%s\n' "$1" down "$3"
  fi
}
