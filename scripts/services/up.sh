#!/usr/bin/env bash
# Start the named test servers (idempotent) and print their environment:
#
#   eval "$(scripts/services/up.sh kafka postgres)"
#
# Progress goes to stderr; stdout carries only `export K=V` lines.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -eq 0 ]]; then
	echo "usage: $0 SERVICE... (one of: kafka postgres hbase s3)" >&2
	exit 2
fi
for name in "$@"; do
	[[ -f $dir/$name.sh ]] || { echo "up.sh: no such service: $name" >&2; exit 2; }
done
for name in "$@"; do
	bash "$dir/$name.sh" up
done
for name in "$@"; do
	bash "$dir/$name.sh" env
done
