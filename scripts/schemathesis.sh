#!/usr/bin/env bash
# Schemathesis (PyPI), the API fuzzer the tests run against each service's OpenAPI
# document, in a virtualenv cached outside the checkout (~/.cache/openorder). Prints the
# path of its `st` command.
#
#   scripts/schemathesis.sh setup
set -euo pipefail

CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}"
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VENV="$CACHE/schemathesis-$VERSION"

case "${1:-setup}" in
  setup)
    if [ ! -x "$VENV/bin/st" ]; then
      mkdir -p "$CACHE"
      rm -rf "$VENV"
      python3 -m venv "$VENV" >&2
      "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
    fi
    echo "$VENV/bin/st"
    ;;
  *) echo "usage: $0 setup" >&2; exit 2 ;;
esac
