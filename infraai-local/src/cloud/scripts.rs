//! The shell scripts of the local cloud's Terraform provisioners. Only fixed
//! text: every value (names, paths, ports, passwords) arrives through the
//! provisioner's environment, so nothing a plan says is ever parsed as shell.

/// Starts a demo-service process (an instance, a group's instance, or with
/// `BALANCE` set a group's load balancer) in its own session (so cancelling
/// terraform's process group does not kill it), output to a file (so
/// terraform is not kept waiting on the pipe), then waits for its record.
/// `DATABASE_URL` and `REDIS_URL`, when set, reach the service through the
/// environment.
pub const START_SERVICE: &str = r#"set -e
mkdir -p "$DIR"
rm -f "$DIR/pid"
setsid "$PROGRAM" ${SUBCOMMAND:+"$SUBCOMMAND"} --name "$NAME" --machine-type "$MACHINE_TYPE" --port "$PORT" --record-dir "$DIR" ${BALANCE:+--balance "$BALANCE"} >"$DIR/service.log" 2>&1 </dev/null &
i=0
while [ ! -s "$DIR/pid" ]; do
  i=$((i+1))
  if [ "$i" -gt 150 ]; then echo "instance $NAME did not start:"; cat "$DIR/service.log"; exit 1; fi
  sleep 0.1
done
echo "instance $NAME ($MACHINE_TYPE) running as pid $(cat "$DIR/pid") on port $(cat "$DIR/port")"
"#;

/// Stops the process recorded in `$DIR` with `$SIGNAL` (TERM unless set;
/// PostgreSQL's fast shutdown is INT), SIGKILL after 5 s, then removes the
/// record.
pub const STOP: &str = r#"alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
if [ -s "$DIR/pid" ]; then
  pid=$(cat "$DIR/pid")
  kill -s "${SIGNAL:-TERM}" "$pid" 2>/dev/null || true
  i=0
  while alive "$pid" && [ "$i" -lt 100 ]; do
    i=$((i+1))
    if [ "$i" -eq 50 ]; then kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.1
  done
  echo "$NAME stopped (pid $pid)"
fi
rm -rf "$DIR"
"#;

/// Removes a database's or cache's data directory (destroy only), and its
/// parent when that is left empty.
pub const REMOVE_DATA: &str = r#"rm -rf "$DATA"
rmdir "$(dirname "$DATA")" 2>/dev/null || true
echo "$NAME: data removed"
"#;

// PostgreSQL refuses to run as root: as root, its programs run as the
// `postgres` OS user Debian's package creates.
const AS_POSTGRES: &str = r#"as_pg=""
if [ "$(id -u)" = 0 ]; then
  if ! id -u postgres >/dev/null 2>&1; then
    echo "database $NAME: running as root, PostgreSQL needs the postgres OS user (Debian's postgresql package creates it)"; exit 1
  fi
  as_pg="setpriv --reuid=postgres --regid=postgres --init-groups"
fi
"#;

/// `initdb` of a new cluster in `$DATA/pgdata` (password authentication
/// only, SCRAM; the `postgres` superuser's password is random and given to
/// no one), then, in single-user mode, the application's role `app` with
/// `$PASSWORD` — not a superuser — owning database `app`.
pub fn postgres_init() -> String {
    AS_POSTGRES.to_string()
        + r#"set -e
mkdir -p "$DATA"
[ -z "$as_pg" ] || chown postgres:postgres "$DATA"
chmod 700 "$DATA"
if ! $as_pg test -w "$DATA"; then echo "database $NAME: the postgres OS user cannot write $DATA (is a parent directory closed to it?)"; exit 1; fi
(umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$DATA/pwfile")
[ -z "$as_pg" ] || chown postgres:postgres "$DATA/pwfile"
if ! $as_pg "$PG_BIN/initdb" -D "$DATA/pgdata" -U postgres --pwfile="$DATA/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C -N >"$DATA/initdb.log" 2>&1; then
  rm -f "$DATA/pwfile"; echo "database $NAME: initdb failed:"; cat "$DATA/initdb.log"; exit 1
fi
rm -f "$DATA/pwfile"
if ! printf "CREATE ROLE app LOGIN PASSWORD '%s'\nCREATE DATABASE app OWNER app\n" "$PASSWORD" \
    | $as_pg "$PG_BIN/postgres" --single -D "$DATA/pgdata" postgres >"$DATA/setup.log" 2>&1; then
  echo "database $NAME: creating the application's role failed:"; grep -v PASSWORD "$DATA/setup.log"; exit 1
fi
rm -f "$DATA/setup.log"
echo "database $NAME initialized in $DATA"
"#
}

/// Starts `postgres` on `$PORT` (loopback only, no Unix socket) with
/// `$MAX_CONNECTIONS`, waits until it accepts connections, and records it.
pub fn postgres_start() -> String {
    AS_POSTGRES.to_string()
        + r#"set -e
mkdir -p "$DIR"
rm -f "$DIR/pid"
setsid $as_pg "$PG_BIN/postgres" -D "$DATA/pgdata" -p "$PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections="$MAX_CONNECTIONS" >"$DIR/server.log" 2>&1 </dev/null &
started=$!
i=0
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; do
  i=$((i+1))
  if [ "$i" -gt 300 ] || ! kill -0 "$started" 2>/dev/null; then echo "database $NAME did not start:"; tail -n 20 "$DIR/server.log"; exit 1; fi
  sleep 0.1
done
"# + RECORD
        + r#"echo "database $NAME ($MACHINE_TYPE, max_connections $MAX_CONNECTIONS) running as pid $started on port $PORT"
"#
}

/// A new cache's configuration in `$DATA/redis.conf` (mode 0600: it holds
/// the password): append-only persistence, loopback only, no eviction.
pub const REDIS_INIT: &str = r#"set -e
mkdir -p "$DATA"
chmod 700 "$DATA"
(umask 077; printf 'requirepass "%s"\ndir "%s"\nappendonly yes\nappendfsync everysec\nbind 127.0.0.1\nprotected-mode yes\nmaxmemory-policy noeviction\n' "$PASSWORD" "$DATA" >"$DATA/redis.conf")
echo "cache $NAME initialized in $DATA"
"#;

/// Starts `redis-server` on `$PORT` with `$MAXMEMORY_MB` and `$MAXCLIENTS`,
/// waits until it is ready, and records it.
pub fn redis_start() -> String {
    r#"set -e
mkdir -p "$DIR"
rm -f "$DIR/pid"
setsid "$REDIS_SERVER" "$DATA/redis.conf" --port "$PORT" --maxmemory "${MAXMEMORY_MB}mb" --maxclients "$MAXCLIENTS" --daemonize no >"$DIR/server.log" 2>&1 </dev/null &
started=$!
i=0
until grep -q "Ready to accept connections" "$DIR/server.log" 2>/dev/null; do
  i=$((i+1))
  if [ "$i" -gt 300 ] || ! kill -0 "$started" 2>/dev/null; then echo "cache $NAME did not start:"; tail -n 20 "$DIR/server.log"; exit 1; fi
  sleep 0.1
done
"#
    .to_string()
        + RECORD
        + r#"echo "cache $NAME ($MACHINE_TYPE, maxmemory ${MAXMEMORY_MB}mb) running as pid $started on port $PORT"
"#
}

// The record of a started server: its URL (mode 0600, it holds the
// password), then port and machine type, then the pid last (its presence
// means the record is complete).
const RECORD: &str = r#"(umask 077; printf '%s' "$URL" >"$DIR/url")
printf '%s' "$PORT" >"$DIR/port"
printf '%s' "$MACHINE_TYPE" >"$DIR/machine_type"
printf '%s' "$started" >"$DIR/pid"
"#;
