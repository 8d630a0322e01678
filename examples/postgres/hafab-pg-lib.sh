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
#   hook.log                what the hook and the start script did

set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
VOL=${HAFAB_VOLUME_DIR:?HAFAB_VOLUME_DIR is not set: run under hafab}
PGDATA=$VOL/data
LOG=$VOL/hook.log
EPOCH_FILE=$VOL/hafab-epoch
TLI_FILE=$VOL/hafab-timeline
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

log() { printf '%s %s[%s]: %s\n' "$(date '+%F %T.%3N')" "${0##*/}" "${HAFAB_INSTANCE:-?}" "$*" >>"$LOG"; }
die() {
  log "error: $*"
  echo "${0##*/}: $*" >&2
  exit 1
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
primary_host() { echo "${HAFAB_REPLICA_PRIMARY%:*}"; }
primary_port() { echo "${HAFAB_REPLICA_PRIMARY##*:}"; }

# The configuration's JSON objects for the replicas, one a line ({"address":…,"instance":…,
# "role":…}); the JSON is flat there, so no JSON parser is needed.
config_replicas() {
  local list=${HAFAB_REPLICA_CONFIG#*\"replicas\":\[}
  list=${list%%\]*}
  grep -o '{[^{}]*}' <<<"$list" || true
}
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"; }

# The primary's instance name ("" when there is none: a reconfiguration's fence).
config_primary_instance() {
  local p=${HAFAB_REPLICA_CONFIG#*\"primary\":}
  [ "$p" != "$HAFAB_REPLICA_CONFIG" ] || return 0
  json_field instance "${p%%\}*}}"
}

# What hafab-replication.conf must say for the configuration in the environment.
#   primary:   no upstream; synchronous_standby_names = 'ANY k ("s1", "s2")' over the current
#              secondaries, k = quorum - 1 (building replicas are streamed to but not counted)
#   secondary/building with a primary: primary_conninfo to it, application_name = instance
#   no primary (fence): no upstream, and a primary waits for a standby that does not exist
desired_replication_conf() {
  local k=$((HAFAB_REPLICA_QUORUM - 1)) names="" r inst
  if [ "$HAFAB_REPLICA_ROLE" = primary ]; then
    while read -r r; do
      [ -n "$r" ] || continue
      [ "$(json_field role "$r")" = secondary ] || continue
      inst=$(json_field instance "$r")
      names="${names:+$names, }\"$inst\""
    done < <(config_replicas)
    echo "primary_conninfo = ''"
    if [ "$k" -le 0 ]; then
      echo "synchronous_standby_names = ''"
    elif [ -z "$names" ]; then
      echo "synchronous_standby_names = '$FENCED'"  # no secondary: nothing may be acknowledged
    else
      echo "synchronous_standby_names = 'ANY $k ($names)'"
    fi
  elif [ -n "$HAFAB_REPLICA_PRIMARY" ]; then
    echo "primary_conninfo = 'host=$(primary_host) port=$(primary_port) user=postgres passfile=$PGPASSFILE application_name=$HAFAB_INSTANCE connect_timeout=1'"
    echo "synchronous_standby_names = '$FENCED'"
  else
    echo "primary_conninfo = ''"
    echo "synchronous_standby_names = '$FENCED'"
  fi
}

# Writes hafab-replication.conf when it differs; returns 0 when it changed.
write_replication_conf() {
  local want
  want=$(desired_replication_conf)
  if [ -f "$REPL_CONF" ] && [ "$(cat "$REPL_CONF")" = "$want" ]; then return 1; fi
  printf '%s\n' "$want" >"$REPL_CONF.tmp"
  mv -f "$REPL_CONF.tmp" "$REPL_CONF"
  log "replication settings: $(tr '\n' ';' <"$REPL_CONF")"
}
