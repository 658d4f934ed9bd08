# PostgreSQL 15+ from Debian's package: this stack's own cluster in var/pg (data/ and its Unix
# socket), TCP on 127.0.0.1:5432, the role darkroom (password darkroom, CREATEDB so tests can
# make databases of their own) and one database per service, owned by it.
# Server output in var/log/postgres.log.

PG_AREA=$VAR/pg
PG_DATABASES=(darkroom_ingest darkroom_metadata darkroom_dedup darkroom_tagging darkroom_notify)

# pg_bin: the bin directory of the newest installed server, if it is 15 or later.
pg_bin() {
  local ctl
  ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
  [[ -n $ctl ]] && (($(basename "${ctl%/bin/pg_ctl}") >= 15)) && say "${ctl%/pg_ctl}"
}

postgres_install() {
  pg_bin >/dev/null && return 0
  apt_install postgresql
  # The package creates, and where services start also runs, a cluster of its own on 5432;
  # this stack runs its own cluster there, so the package's one is stopped and left manual.
  local version cluster port state
  while read -r version cluster port state _; do
    [[ $port == 5432 && $state == online ]] || continue
    pg_ctlcluster "$version" "$cluster" stop
    say manual >"/etc/postgresql/$version/$cluster/start.conf"
  done < <(pg_lsclusters -h 2>/dev/null)
}

# as_pg COMMAND...: the server refuses to run as root, so root runs it as the user postgres.
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# pg_home: the real path of var/pg, made on first use and owned by the user that runs the
# server. When that user cannot reach var/ (a clone under a private home), the data lives in
# /var/tmp/darkroom-<hash of the repo path>/pg and var/pg links to it.
pg_home() {
  [[ -L $PG_AREA && ! -d $PG_AREA ]] && rm "$PG_AREA"
  if [[ ! -d $PG_AREA ]]; then
    mkdir -p "$PG_AREA"
    if ((EUID == 0)); then
      chown postgres: "$PG_AREA"
      chmod 700 "$PG_AREA"
      if ! as_pg test -w "$PG_AREA"; then
        local outside
        outside=/var/tmp/darkroom-$(printf %s "$ROOT" | sha256sum | cut -c1-8)
        rmdir "$PG_AREA"
        mkdir -p "$outside/pg"
        chmod 755 "$outside"
        chown postgres: "$outside/pg"
        chmod 700 "$outside/pg"
        ln -s "$outside/pg" "$PG_AREA"
      fi
    fi
  fi
  readlink -f "$PG_AREA"
}

# pg_pid: the postmaster's pid, from its own pid file, if it is alive.
pg_pid() {
  local pid
  pid=$(head -n 1 "$PG_AREA/data/postmaster.pid" 2>/dev/null) && alive "$pid" && say "$pid"
}

postgres_start() {
  local bin home
  bin=$(pg_bin) || die "postgres: no PostgreSQL 15+ server found; run deploy/local/stack install"
  home=$(pg_home)
  mkdir -p "$LOGS" "$RUN"
  if pg_pid >/dev/null; then
    say "postgres is already running"
  else
    claim_port postgres 5432
    if [[ ! -f $home/data/PG_VERSION ]]; then
      say "postgres: creating its cluster in var/pg/data"
      as_pg "$bin/initdb" -D "$home/data" -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >>"$LOGS/postgres.log" 2>&1 ||
        start_failed postgres "could not create its cluster"
    fi
    say "starting postgres on 127.0.0.1:5432"
    # Without -l, pg_ctl leaves the server writing to its own output: our log file.
    # shared_buffers: dedup's band index of a million-photo project stays in memory
    # (128 MB, the default, leaves look-ups at 1 M 44x faster than a scan; 512 MB, 68x).
    as_pg "$bin/pg_ctl" -D "$home/data" -w -t 60 -o "-c listen_addresses=127.0.0.1 -c port=5432 \
      -c unix_socket_directories='$home' -c max_connections=200 -c shared_buffers=512MB" start \
      >>"$LOGS/postgres.log" 2>&1 || start_failed postgres "did not start"
  fi
  pg_pid >"$RUN/postgres.pid"
  "$bin/pg_isready" -q -h 127.0.0.1 -p 5432 -t 30 || start_failed postgres "does not accept connections"
  pg_provision "$bin" "$home"
}

# pg_provision BIN HOME: the role and the databases, each created only when missing.
pg_provision() {
  local names
  names=$(printf ", '%s'" "${PG_DATABASES[@]}")
  as_pg "$1/psql" -h "$2" -p 5432 -d postgres -q -v ON_ERROR_STOP=1 >>"$LOGS/postgres.log" 2>&1 <<SQL ||
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'darkroom') THEN CREATE ROLE darkroom; END IF;
END \$\$;
ALTER ROLE darkroom LOGIN CREATEDB PASSWORD 'darkroom';
SELECT format('CREATE DATABASE %I OWNER darkroom', name)
  FROM unnest(ARRAY[${names:2}]) AS name
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name)
\gexec
SQL
    start_failed postgres "could not create the role darkroom and its databases"
}

postgres_stop() {
  local bin
  rm -f "$RUN/postgres.pid"
  pg_pid >/dev/null || return 0
  bin=$(pg_bin)
  say "stopping postgres"
  as_pg "$bin/pg_ctl" -D "$(readlink -f "$PG_AREA")/data" -m fast -w -t 60 stop >>"$LOGS/postgres.log" 2>&1 ||
    as_pg "$bin/pg_ctl" -D "$(readlink -f "$PG_AREA")/data" -m immediate -w stop >>"$LOGS/postgres.log" 2>&1
}

postgres_status() { report postgres postgres 5432; }
