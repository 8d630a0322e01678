# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing it
# What hafab-pg-start (the role's command) and hafab-pg-hook (replication.hook) share: where a
# replica keeps its files, how it reaches PostgreSQL, the settings hafab manages. Sourced.
#
# A replica's files, all under HAFAB_VOLUME_DIR (the agent gives each replica a directory of
# its own on its node, <data-dir>/replicas/<instance>, which never moves):
#   data/                   PGDATA
#   hafab-epoch             the configuration epoch the hook last applied (never goes down)
#   hafab-timeline          the last timeline this replica received WAL on (status: position)
#   pgpass                  the superuser's password for libpq (psql, pg_basebackup, pg_rewind,
#                           the standby's primary_conninfo): it is not written in any setting
#   aside/                  what a replica moved aside instead of deleting (never deleted)
#   preparing               there while hafab-pg-start prepares PGDATA (initdb, pg_basebackup,
#                           pg_rewind): the hook leaves PGDATA alone then
#   hook.log                what the hook and the start script did

set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
VOL=${HAFAB_VOLUME_DIR:?HAFAB_VOLUME_DIR is not set: run under hafab}
PGDATA=$VOL/data
LOG=$VOL/hook.log
EPOCH_FILE=$VOL/hafab-epoch
TLI_FILE=$VOL/hafab-timeline
PREPARING=$VOL/preparing
# The settings hafab changes while PostgreSQL runs (primary_conninfo,
# synchronous_standby_names), rewritten whole by the hook and reloaded. Included last from
# hafab.conf; PostgreSQL reads postgresql.auto.conf after it: do not ALTER SYSTEM them.
REPL_CONF=$PGDATA/hafab-replication.conf
# A name no standby has: a primary fenced with it waits for ever before acknowledging a
# commit (see hafab-pg-hook, "fence").
FENCED='"hafab-fenced"'
export PGPASSFILE=$VOL/pgpass PGCONNECT_TIMEOUT=1 PGUSER=postgres PGDATABASE=postgres
export PGAPPNAME=hafab-pg
export PGGSSENCMODE=disable # no Kerberos probe on every connection (slow where krb5 is absent)

# The hook runs often (every heartbeat) and has 2 s per call on what may be a loaded machine:
# everything here is done by bash itself, without starting another program, except psql and
# the server tools.
log() {
  local t=${EPOCHREALTIME/,/.}
  printf '%(%F %T)T.%s %s[%s]: %s\n' "${t%.*}" "${t:${#t}-6:3}" "${0##*/}" "${HAFAB_INSTANCE:-?}" "$*" >>"$LOG"
}
die() {
  log "error: $*"
  echo "${0##*/}: $*" >&2
  exit 1
}

# Writes line $2 to file $1, whole or not at all: the agent kills a status call that a new
# configuration overtakes (and any call that runs past its time), and a timeline file cut in
# the middle would understate the replica's position. A rename is a process (mv): not for
# what every configure call writes.
write_file() {
  printf '%s\n' "$2" >"$1.tmp"
  mv -f "$1.tmp" "$1"
}

# The superuser's password (POSTGRES_PASSWORD, set in the manifest) for every libpq client.
write_pgpass() {
  (umask 077 && printf '*:*:*:postgres:%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in the manifest}" >"$PGPASSFILE.tmp")
  mv -f "$PGPASSFILE.tmp" "$PGPASSFILE"
}

# psql to this replica's server, over TCP (unix sockets are off: a deep state directory would
# exceed their path limit). Unaligned, tuples only, '|' between columns.
local_psql() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$HAFAB_HOST" -p "$HAFAB_PORT" "$@"; }

# The primary's address (host:port) split for libpq.
PRIMARY_HOST=${HAFAB_REPLICA_PRIMARY%:*}
PRIMARY_PORT=${HAFAB_REPLICA_PRIMARY##*:}

# Sets CONFIG_REPLICAS to the configuration's JSON objects for the replicas
# ({"address":…,"instance":…,"role":…}); the JSON is flat there, so no JSON parser is needed.
config_replicas() {
  local list=${HAFAB_REPLICA_CONFIG#*\"replicas\":\[} re='^[^{]*(\{[^{}]*\})(.*)$'
  list=${list%%\]*}
  CONFIG_REPLICAS=()
  while [[ $list =~ $re ]]; do
    CONFIG_REPLICAS+=("${BASH_REMATCH[1]}")
    list=${BASH_REMATCH[2]}
  done
}
# Sets REPLY to the string field $1 of the flat JSON object $2 ("" if it has none).
json_field() {
  local re="\"$1\":\"([^\"]*)\""
  REPLY=""
  if [[ $2 =~ $re ]]; then REPLY=${BASH_REMATCH[1]}; fi
}

# Sets REPLY to the primary's instance name ("" when there is none: a reconfiguration's fence).
config_primary_instance() {
  local p=${HAFAB_REPLICA_CONFIG#*\"primary\":}
  REPLY=""
  [ "$p" != "$HAFAB_REPLICA_CONFIG" ] || return 0
  json_field instance "${p%%\}*}}"
}

# Sets $1 to the first line of file $2, or to $3 when it cannot be read.
read_file() {
  local -n into=$1
  into=$3
  if [ -r "$2" ]; then read -r into <"$2" || true; fi
  [ -n "$into" ] || into=$3
}

# Sets WANT_CONF to what hafab-replication.conf must say for the configuration in the
# environment, and WANT_SYNC to its synchronous_standby_names:
#   primary:   no upstream; synchronous_standby_names = 'ANY k ("s1", "s2")' over the current
#              secondaries, k = quorum - 1 (building replicas are streamed to but not counted)
#   secondary/building with a primary: primary_conninfo to it, application_name = instance
#   no primary (fence): no upstream, and a primary waits for a standby that does not exist
desired_replication_conf() {
  local k=$((HAFAB_REPLICA_QUORUM - 1)) names="" r conninfo=""
  WANT_SYNC=$FENCED
  if [ "$HAFAB_REPLICA_ROLE" = primary ]; then
    config_replicas
    for r in "${CONFIG_REPLICAS[@]}"; do
      json_field role "$r"
      [ "$REPLY" = secondary ] || continue
      json_field instance "$r"
      names="${names:+$names, }\"$REPLY\""
    done
    if [ "$k" -le 0 ]; then
      WANT_SYNC=""
    elif [ -n "$names" ]; then  # else no secondary: nothing may be acknowledged
      WANT_SYNC="ANY $k ($names)"
    fi
  elif [ -n "$HAFAB_REPLICA_PRIMARY" ]; then
    conninfo="host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres passfile=$PGPASSFILE application_name=$HAFAB_INSTANCE connect_timeout=1"
  fi
  WANT_CONF="primary_conninfo = '$conninfo'"$'\n'"synchronous_standby_names = '$WANT_SYNC'"
}

# Writes hafab-replication.conf when it differs; returns 0 when it changed.
write_replication_conf() {
  local have=""
  desired_replication_conf
  if [ -f "$REPL_CONF" ]; then IFS= read -r -d '' have <"$REPL_CONF" || true; fi
  [ "$have" != "$WANT_CONF"$'\n' ] || return 1
  printf '%s\n' "$WANT_CONF" >"$REPL_CONF.tmp"
  mv -f "$REPL_CONF.tmp" "$REPL_CONF"
  log "replication settings: ${WANT_CONF//$'\n'/; }"
}
