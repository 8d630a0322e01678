#!/bin/sh
# ExecProvider detach (and force_detach) script for the fault harness: a detach that takes
# $HAFAB_TEST_DETACH_DELAY seconds (default 2), like a cloud disk detach. The volume stays
# attached to NODE (describe says so) until the delay has passed.
# detach VOLUME NODE. Exit 0 (also when the volume is not attached to NODE). A detach that
# removed the record is appended to provider.log ("UNIX_MS detached VOLUME NODE").
set -eu
root=${HAFAB_TEST_PROVIDER_ROOT:?HAFAB_TEST_PROVIDER_ROOT is not set}
vol=$1 node=$2
sleep "${HAFAB_TEST_DETACH_DELAY:-2}"
[ -d "$root/records" ] || exit 0
exec 9>"$root/records/$vol.lock"
flock 9
record="$root/records/$vol"
[ -s "$record" ] || exit 0
read -r held_node held_instance < "$record"
[ "$held_node" = "$node" ] || exit 0
rm -f "$record"
echo "$(date +%s%3N) detached $vol $node${HAFAB_FORCE:+ force}" >> "$root/provider.log"
