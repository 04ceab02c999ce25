#!/usr/bin/env bash
# Run SQL with DuckDB (from PyPI, in a virtual environment cached under
# $FLOWRUN_CACHE/venv-duckdb) and print each result row as a JSON array on
# its own line. The lake's interop test reads flowrun's Parquet lake with it.
#
#   scripts/duckdb.sh "SELECT count(*) FROM read_parquet('out/lake/**/*.parquet', hive_partitioning=true)"
set -euo pipefail
FLOWRUN_CACHE="${FLOWRUN_CACHE:-${HOME:-/root}/.cache/flowrun}"
VERSION="${FLOWRUN_DUCKDB_VERSION:-2.0.1}"
VENV="$FLOWRUN_CACHE/venv-duckdb-$VERSION"
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
	echo "[duckdb] making $VENV (pip install duckdb==$VERSION)" >&2
	python3 -m venv "$VENV" >&2
	"$VENV/bin/pip" install -q "duckdb==$VERSION" >&2
fi
exec "$VENV/bin/python" - "$@" <<'PY'
import json, sys, datetime, decimal
import duckdb
def enc(o):
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return str(o)
    return str(o)
con = duckdb.connect()
for sql in sys.argv[1:]:
    for row in con.execute(sql).fetchall():
        print(json.dumps(list(row), default=enc))
PY
