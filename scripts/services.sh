#!/usr/bin/env bash
# Installs, starts and stops the key services the provider tests run against,
# on 127.0.0.1 only.
#
#   bash scripts/services.sh start [name...]   install (idempotent) and start
#   bash scripts/services.sh stop  [name...]   stop what `start` started
#   bash scripts/services.sh env               print the path of the env file
#
# Then `source "$(bash scripts/services.sh env)"` and run the tests; with
# LOCKBOX_REQUIRE_SERVICES=1 a test whose service is missing fails instead of
# skipping.
#
# Everything lives under ${LOCKBOX_SERVICES_DIR:-target/services} (made
# absolute): the env file `env.sh`, one `<name>.pid` per running process,
# logs, the Python venv and each service's state.
#
# Each scripts/services.d/<name>.sh defines:
#   svc_<name>_install   idempotent install at pinned versions (svc_apt, svc_pip)
#   svc_<name>_start     start on 127.0.0.1, wait until ready, svc_export the
#                        variables the tests need, svc_pidfile each process
#   svc_<name>_stop      optional: extra clean-up after its pids are killed
# and may use the helpers below. Start order is the file name order.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
services_dir="${LOCKBOX_SERVICES_DIR:-target/services}"
case "$services_dir" in
  /*) ;;
  *) services_dir="$root/$services_dir" ;;
esac
export LOCKBOX_SERVICES_DIR="$services_dir"
export LOCKBOX_SERVICES_ENV="$LOCKBOX_SERVICES_DIR/env.sh"

# The services started here never inherit a key: drop every environment
# variable holding a local KEK in the form LocalKek::from_env reads (standard
# base64 of 32 bytes: 43 characters and one '=', surrounding whitespace
# allowed) before anything is started.
svc_drop_kek_variables() {
  local name value trimmed
  while IFS= read -r name; do
    value="${!name-}"
    trimmed="$(printf '%s' "$value" | tr -d ' \t\n\r\f')"
    if [[ "$trimmed" =~ ^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$ ]]; then
      unset "$name"
    fi
  done < <(compgen -e)
}
svc_drop_kek_variables

# --- helpers for scripts/services.d/*.sh ------------------------------------

svc_log() { printf '[services] %s\n' "$*" >&2; }
svc_die() { svc_log "error: $*"; exit 1; }

# svc_export NAME VALUE: appends `export NAME=VALUE` (shell-quoted) to env.sh.
svc_export() {
  printf 'export %s=%q\n' "$1" "$2" >>"$LOCKBOX_SERVICES_ENV"
}

# svc_pidfile NAME PID: records a process for `stop`.
svc_pidfile() {
  printf '%s\n' "$2" >"$LOCKBOX_SERVICES_DIR/$1.pid"
}

# svc_as_root CMD...: runs CMD as root (directly, or through sudo).
svc_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# svc_apt PKG=VERSION...: installs Debian packages at pinned versions (apt
# version globs such as 2.6.1-* allowed), skipping any already installed at a
# matching version.
svc_apt_updated=0
svc_apt() {
  local want=() spec pkg ver have
  for spec in "$@"; do
    pkg="${spec%%=*}"
    ver="${spec#*=}"
    have="$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null || true)"
    # shellcheck disable=SC2053 # $ver is a glob on purpose
    if [[ "$have" == "install ok installed "* ]] && [[ "${have##* }" == $ver ]]; then
      continue
    fi
    want+=("$spec")
  done
  if [ "${#want[@]}" -eq 0 ]; then return 0; fi
  if [ "$svc_apt_updated" -eq 0 ]; then
    svc_as_root apt-get update -qq
    svc_apt_updated=1
  fi
  svc_log "apt-get install ${want[*]}"
  svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"
}

# svc_venv: prints the path of the shared Python venv, creating it if needed.
svc_venv() {
  local venv="$LOCKBOX_SERVICES_DIR/venv"
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      svc_apt "python3-venv=*"
      python3 -m venv "$venv"
    fi
  fi
  printf '%s\n' "$venv"
}

# svc_pip REQUIREMENT...: pip-installs pinned requirements (name==version)
# into the venv, skipping those already satisfied.
svc_pip() {
  local venv
  venv="$(svc_venv)"
  if ! "$venv/bin/python" - "$@" <<'PY' >/dev/null 2>&1; then
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, _, pinned = req.partition("==")
    name = name.split("[")[0]
    assert version(name) == pinned, req
PY
    svc_log "pip install $*"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

# svc_free_port: prints a free TCP port on 127.0.0.1.
svc_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# svc_wait_port PORT [SECONDS] [PID]: waits until 127.0.0.1:PORT accepts
# connections; fails early if PID exits.
svc_wait_port() {
  local port="$1" seconds="${2:-60}" pid="${3:-}" i
  for ((i = 0; i < seconds * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      svc_die "process $pid exited before 127.0.0.1:$port was ready"
    fi
    sleep 0.1
  done
  svc_die "127.0.0.1:$port not ready after ${seconds}s"
}

# --- commands -----------------------------------------------------------------

all_names() {
  local f
  for f in "$root"/scripts/services.d/*.sh; do
    if [ -e "$f" ]; then basename "$f" .sh; fi
  done
}

load() {
  local name="$1" f="$root/scripts/services.d/$1.sh"
  [ -f "$f" ] || svc_die "no service definition $f"
  # shellcheck disable=SC1090
  source "$f"
  declare -F "svc_${name}_install" >/dev/null || svc_die "$f does not define svc_${name}_install"
  declare -F "svc_${name}_start" >/dev/null || svc_die "$f does not define svc_${name}_start"
}

stop_one() {
  local name="$1" pidfile pid i
  for pidfile in "$LOCKBOX_SERVICES_DIR/$name.pid" "$LOCKBOX_SERVICES_DIR/$name".*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      svc_log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        svc_log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$pidfile"
  done
  rm -f "$LOCKBOX_SERVICES_DIR/$name.env"
  if [ -f "$root/scripts/services.d/$name.sh" ]; then
    # shellcheck disable=SC1090
    source "$root/scripts/services.d/$name.sh"
    if declare -F "svc_${name}_stop" >/dev/null; then
      "svc_${name}_stop"
    fi
  fi
}

# Rewrites env.sh from the header and the saved lines of running services.
write_env() {
  local f
  {
    echo "# Written by scripts/services.sh; source it before running the provider tests."
    echo "export LOCKBOX_SERVICES_DIR=$(printf '%q' "$LOCKBOX_SERVICES_DIR")"
    for f in "$LOCKBOX_SERVICES_DIR"/*.env; do
      if [ -f "$f" ]; then cat "$f"; fi
    done
  } >"$LOCKBOX_SERVICES_ENV"
}

cmd="${1:-}"
if [ $# -gt 0 ]; then shift; fi
names=("$@")
if [ "${#names[@]}" -eq 0 ]; then
  mapfile -t names < <(all_names)
fi

case "$cmd" in
  start)
    mkdir -p "$LOCKBOX_SERVICES_DIR"
    for name in "${names[@]}"; do stop_one "$name"; done
    write_env
    for name in "${names[@]}"; do
      load "$name"
      svc_log "installing $name"
      "svc_${name}_install"
      svc_log "starting $name"
      before="$(wc -l <"$LOCKBOX_SERVICES_ENV")"
      "svc_${name}_start"
      # Keep this service's lines, so starting or stopping another one
      # later rebuilds env.sh without losing them.
      tail -n "+$((before + 1))" "$LOCKBOX_SERVICES_ENV" >"$LOCKBOX_SERVICES_DIR/$name.env"
    done
    svc_log "ready: source $LOCKBOX_SERVICES_ENV"
    ;;
  stop)
    for name in "${names[@]}"; do stop_one "$name"; done
    if [ -d "$LOCKBOX_SERVICES_DIR" ]; then write_env; fi
    ;;
  env)
    printf '%s\n' "$LOCKBOX_SERVICES_ENV"
    ;;
  *)
    echo "usage: $0 start|stop|env [service...]" >&2
    echo "services: $(all_names | tr '\n' ' ')" >&2
    exit 2
    ;;
esac
