#!/usr/bin/env bash
# The Debian package as an operator uses it (registered with ctest as package_test):
#   package_test.sh BUILD_DIR VERSION
# builds hafab_VERSION_amd64.deb with CPack into a temporary directory, checks its declared
# dependencies, installs it with dpkg -i, runs the installed hafab (--version, validate on the
# installed example), checks the systemd units point at the installed binary and are enabled by
# nobody, removes it with dpkg -r and checks that none of its files is left.
# Exit 77 (skipped): not root, or a hafab package is already installed (it is not replaced).
set -euo pipefail
build=$(cd "$1" && pwd)
version=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "skipped: dpkg -i needs root"; exit 77; }
if dpkg-query -W -f='${Status}' hafab 2>/dev/null | grep -q "ok installed"; then
  echo "skipped: a hafab package is installed on this machine; not replacing it"
  exit 77
fi

tmp=$(mktemp -d /tmp/hafab-package-XXXXXX)
installed=0
cleanup() {
  if [ "$installed" = 1 ]; then dpkg -r hafab >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# What `cmake --build build --target package` runs, with the output in $tmp.
cpack --config "$build/CPackConfig.cmake" -B "$tmp" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
deb="$tmp/hafab_${version}_amd64.deb"
[ -f "$deb" ] || { ls "$tmp"; fail "cpack made no $deb"; }
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

# Dependencies: one per shared library the binaries load, computed by dpkg-shlibdeps.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for dep in libc6 libstdc++6 libyaml-cpp libsqlite3 libfmt libspdlog; do
  [[ "$depends" == *"$dep"* ]] || fail "Depends lacks $dep"
done

dpkg -i "$deb"
installed=1
dpkg -L hafab >"$tmp/files"

# Run the installed binary from elsewhere, with the PATH of a systemd service.
cd /
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$(command -v hafab)" = /usr/bin/hafab ] || fail "hafab resolves to $(command -v hafab)"
[ "$(hafab --version)" = "hafab $version" ] || fail "hafab --version said: $(hafab --version)"
example=/usr/share/hafab/examples/quickstart.yaml
# As root it also warns that its roles name no user: (they would run as root); it must be valid.
out="$(hafab validate "$example")" || fail "hafab validate $example: $out"
[ "$(tail -n1 <<<"$out")" = ok ] && ! grep -q ': error:' <<<"$out" || fail "hafab validate $example: $out"
if hafab validate /usr/share/hafab/examples/bad.yaml >/dev/null 2>&1; then
  fail "the installed bad.yaml validates"
fi
# Each role's command resolves next to the installed hafab (where `hafab up` looks first).
for cmd in $(sed -n 's/^ *command: *\([^ #]*\).*/\1/p' "$example"); do
  [ -x "/usr/bin/$cmd" ] || fail "the example's command $cmd is not in /usr/bin"
done
for doc in README.md deploy.md architecture.md FORMAT.md; do
  [ -s "/usr/share/doc/hafab/$doc" ] || fail "/usr/share/doc/hafab/$doc missing"
done
for f in grafana/hafab.json prometheus/hafab-alerts.yml; do
  [ -s "/usr/share/hafab/$f" ] || fail "/usr/share/hafab/$f missing"
done

# The units run the installed binary and nothing enables them.
units=(hafab-controller hafab-agent hafab-gateway)
for u in "${units[@]}"; do
  f=/usr/lib/systemd/system/$u.service
  [ -f "$f" ] || fail "$f missing"
  exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$f")
  [ "$exe" = /usr/bin/hafab ] || fail "$f starts $exe"
  if ls /etc/systemd/system/*.wants/"$u.service" >/dev/null 2>&1; then fail "$u is enabled"; fi
done

dpkg -r hafab
installed=0
status=$(dpkg-query -W -f='${Status}' hafab 2>/dev/null || true)
[ -z "$status" ] || [[ "$status" == *" not-installed" ]] ||
  fail "after dpkg -r the package is \"$status\" (files or config left)"
left=()
while read -r f; do
  if [ -f "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done <"$tmp/files"
for d in /usr/share/hafab /usr/share/doc/hafab; do [ ! -e "$d" ] || left+=("$d"); done
[ ${#left[@]} -eq 0 ] || fail "left after dpkg -r: ${left[*]}"
echo "package installed, ran and removed cleanly"
