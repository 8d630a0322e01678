#!/bin/sh
# ExecProvider attach script for the fault harness: LocalProvider's behaviour in shell.
# attach VOLUME NODE INSTANCE. Volume V is $HAFAB_TEST_PROVIDER_ROOT/mounts/V; its attachment
# is the record records/V ("NODE INSTANCE"), changed only under flock(1) of records/V.lock.
# Exit 0: attached to NODE (also when it already was); 3: attached elsewhere (printed).
# Every outcome is appended to provider.log ("UNIX_MS attach VOLUME NODE ok|conflict").
set -eu
root=${HAFAB_TEST_PROVIDER_ROOT:?HAFAB_TEST_PROVIDER_ROOT is not set}
vol=$1 node=$2 instance=$3
mkdir -p "$root/records" "$root/mounts/$vol"
exec 9>"$root/records/$vol.lock"
flock 9
record="$root/records/$vol"
if [ -s "$record" ]; then
  read -r held_node held_instance < "$record"
  [ "$held_node" = "$node" ] && exit 0
  echo "$(date +%s%3N) attach $vol $node conflict $held_node" >> "$root/provider.log"
  echo "$held_node $held_instance"
  exit 3
fi
printf '%s %s\n' "$node" "$instance" > "$record.tmp"
sync "$record.tmp"
mv "$record.tmp" "$record"
echo "$(date +%s%3N) attach $vol $node ok" >> "$root/provider.log"
