#!/usr/bin/env bash
# setup.sh - install Alibaba's official aliyun-log-python-sdk (unchanged, from PyPI) into a venv
# for the fidelity test (tests/it/python_sdk.rs). Idempotent. Prints the venv's python path last.
#
#   SLS_SDK_VENV   venv directory (default /var/cache/siemfwd-venv)
#   SLS_SDK_SPEC   pip requirement (default aliyun-log-python-sdk==0.9.52, the version the
#                  protocol notes were checked against)
# Also installs PyPI `zstd`, which the SDK imports (optionally) for zstd bodies, `pycef`
# (siemfwd's CEF body is read back with it: siemfwd/tests/it/cef_pycef.rs), and Alibaba's
# official credential library `alibabacloud_credentials` (the emulator's metadata service and
# STS are checked against it: tests/python/credentials.py).
set -euo pipefail
VENV=${SLS_SDK_VENV:-/var/cache/siemfwd-venv}
SPEC=${SLS_SDK_SPEC:-aliyun-log-python-sdk==0.9.52}
PY=${PYTHON:-python3}

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -q python3-venv >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
    else
        echo "setup.sh: python3-venv is missing and cannot be installed (not root / no apt-get)" >&2
        exit 1
    fi
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import aliyun.log, zstd, pycef, alibabacloud_credentials' 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check "$SPEC" zstd pycef==1.11 \
        alibabacloud_credentials==1.0.12 >&2
fi
"$VENV/bin/python" -c 'import aliyun.log, sys; print("aliyun-log-python-sdk", aliyun.log.version.__version__, file=sys.stderr)'
echo "$VENV/bin/python"
