#!/usr/bin/env bash
# Re-pin constraints.txt from what .venv has installed (run after changing dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
header=$(sed -n '/^#/!q;p' constraints.txt)
{
  printf '%s\n' "$header"
  .venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check 2>/dev/null \
    | grep -viE '^dbt-prom-bridge=' | LC_ALL=C sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
