#!/usr/bin/env bash
# Run Python with pyarrow (from PyPI, in a virtual environment cached under
# $FLOWRUN_CACHE/venv-pyarrow-VERSION). The lake's interop test reads
# flowrun's Parquet lake on the S3 server with pyarrow's own S3 client and
# dataset reader, an implementation independent of arrow-go's.
#
#   scripts/pyarrow.sh -c 'import pyarrow; print(pyarrow.__version__)'
set -euo pipefail
FLOWRUN_CACHE="${FLOWRUN_CACHE:-${HOME:-/root}/.cache/flowrun}"
VERSION="${FLOWRUN_PYARROW_VERSION:-26.0.1}"
VENV="$FLOWRUN_CACHE/venv-pyarrow-$VERSION"
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import pyarrow.fs, pyarrow.dataset' 2>/dev/null; then
	echo "[pyarrow] making $VENV (pip install pyarrow==$VERSION)" >&2
	python3 -m venv "$VENV" >&2
	"$VENV/bin/pip" install -q "pyarrow==$VERSION" >&2
fi
exec "$VENV/bin/python" "$@"
