#!/usr/bin/env bash
# Builds dist/hostwall_<version>_amd64.deb and dist/hostwall-<version>.x86_64.rpm.
# Usage: scripts/package.sh BINARY VERSION
set -euo pipefail
bin=$1 version=$2
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
rm -rf dist/stage && mkdir -p dist/stage
"$bin" gen-docs dist/stage
gzip -9n dist/stage/man/*.8
cat > dist/stage/changelog.yml <<YAML
- semver: "$version-1"
  date: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  packager: hostwall developers <dev@hostwall.invalid>
  changes:
    - note: Built from commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown).
YAML
printf 'hostwall (%s-1) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- hostwall developers <dev@hostwall.invalid>  %s\n' \
  "$version" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" |
  gzip -9n > dist/stage/changelog.Debian.gz
deb="dist/hostwall_${version}_amd64.deb" rpm="dist/hostwall-${version}.x86_64.rpm"
# One config per packager: the man pages and examples appended to contents
# (the list ends the file's contents section, before overrides).
config() { # packager, extra line for each page
  awk -v pkg="$1" -v extra="$2" '
    /^overrides:/ && !done {
      while ((getline line < "dist/stage/docs.list") > 0) {
        split(line, f, " ")
        printf "  - src: %s\n    dst: %s\n    file_info: {mode: 0644}\n", f[1], f[2]
        if (extra != "") print "    " extra
      }
      print ""; done = 1
    }
    { if (pkg == "deb" && /^changelog:/) next; print }
  ' packaging/nfpm.yaml > "dist/stage/nfpm-$1.yaml"
}
{
  for p in dist/stage/man/*.8.gz; do echo "$p /usr/share/man/man8/${p##*/}"; done
  find examples -type f | sort | while read -r p; do echo "$p /usr/share/doc/hostwall/$p"; done
  echo "packaging/metrics.conf /usr/share/doc/hostwall/metrics.conf"
  echo "packaging/etcd.conf /usr/share/doc/hostwall/etcd.conf"
} > dist/stage/docs.list
config deb ""
config rpm "type: doc"
VERSION=$version go tool nfpm package --config dist/stage/nfpm-deb.yaml --packager deb --target "$deb" >/dev/null
VERSION=$version go tool nfpm package --config dist/stage/nfpm-rpm.yaml --packager rpm --target "$rpm" >/dev/null
echo "$deb"
echo "$rpm"
