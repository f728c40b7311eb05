#!/usr/bin/env bash
# A real SMTP server for the tests: aiosmtpd from PyPI, in a virtualenv cached outside the
# checkout (~/.cache/openorder/smtp-venv). `scripts/smtp.sh setup` installs it (idempotent)
# and prints the Python to run scripts/smtp_sink.py with.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}"
VENV="$CACHE/smtp-venv"
AIOSMTPD_VERSION="1.4.6"

case "${1:-setup}" in
  setup)
    if "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null; then
      echo "$VENV/bin/python"
      exit 0
    fi
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    if python3 -m venv "$VENV" >&2 &&
      "$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" >&2; then
      echo "$VENV/bin/python"
      exit 0
    fi
    # No venv/pip (a bare Debian python3): Debian's own package.
    if ! /usr/bin/python3 -c "import aiosmtpd" 2>/dev/null; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-aiosmtpd >&2
    fi
    echo /usr/bin/python3
    ;;
  *)
    echo "usage: $0 setup" >&2
    exit 2
    ;;
esac
