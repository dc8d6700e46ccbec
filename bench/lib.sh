# Shared by the bench scripts (sourced): logging, installing what is
# missing, free ports, and a work directory whose processes are stopped and
# which is removed on exit.
log() { printf '== %s\n' "$*" >&2; }

apt_updated=""
need() { # need <command> <debian package>: installs the package when the command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    log "$1 is missing: install the Debian package $2 (or run this as root)"; exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# infraai-server in release: $SERVER_BIN, or built now.
server_binary() {
  if [ -n "${SERVER_BIN:-}" ]; then
    echo "$SERVER_BIN"
  else
    log "building infraai-server (release)"
    (cd "$root" && cargo build --release -q -p infraai-server)
    echo "${CARGO_TARGET_DIR:-$root/target}/release/infraai-server"
  fi
}

work=$(mktemp -d)
pids=()
cleanup() {
  # A stopped process (see bench/alert-ingest.sh) must run again to end.
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
