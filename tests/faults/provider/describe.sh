#!/bin/sh
# ExecProvider describe script for the fault harness.
# describe VOLUME: prints "NODE INSTANCE" (nothing when attached nowhere); exit 2 if the
# volume was never created.
set -eu
root=${HAFAB_TEST_PROVIDER_ROOT:?HAFAB_TEST_PROVIDER_ROOT is not set}
vol=$1
[ -d "$root/mounts/$vol" ] || exit 2
exec 9>"$root/records/$vol.lock"
flock 9
[ -s "$root/records/$vol" ] && cat "$root/records/$vol"
exit 0
