#!/usr/bin/env bash
# The version of this checkout, valid for Debian and RPM alike: a tag
# v1.2.3 gives 1.2.3; otherwise 0.1.0~git<commit time>.<commit>. "+dirty"
# marks uncommitted changes.
set -euo pipefail
if v=$(git describe --tags --match 'v[0-9]*' --exact-match 2>/dev/null); then
  v=${v#v}
elif git rev-parse --git-dir >/dev/null 2>&1; then
  v="0.1.0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=7 HEAD)"
else
  echo 0.1.0~dev; exit 0
fi
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  v="$v+dirty"
fi
echo "$v"
