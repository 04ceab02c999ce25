#!/usr/bin/env bash
# Stop the named test servers and remove their data; with no names, all of them.
#
#   scripts/services/down.sh [SERVICE...]
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -eq 0 ]]; then
	set -- kafka postgres s3 hbase
fi
rc=0
for name in "$@"; do
	if [[ ! -f $dir/$name.sh ]]; then
		echo "down.sh: no such service: $name" >&2
		rc=2
		continue
	fi
	bash "$dir/$name.sh" down || rc=1
done
exit $rc
