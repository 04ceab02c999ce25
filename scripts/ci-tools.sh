#!/usr/bin/env bash
# Installs the tools the tests run besides the servers, when missing:
# Prometheus (and promtool) and headless Chromium from Debian's packages for
# the monitoring tests, pre-commit from PyPI for the hook test. Idempotent:
# a machine that has them costs a few lookups. Called by scripts/ci-test.sh;
# .ci/run calls it early, while SeaweedFS builds.
#
# pip may put pre-commit in a scripts folder that is not on a bare PATH: the
# caller adds $(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))').
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
	echo "== installing ${missing[*]} (Debian)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if ! command -v pre-commit >/dev/null 2>&1 && [[ ! -x $scripts/pre-commit ]]; then
	echo "== installing pre-commit (PyPI)" >&2
	python3 -m pip install --quiet --disable-pip-version-check pre-commit ||
		python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pre-commit
fi
