#!/usr/bin/env bash
# Headless Chromium for the tests that load pages in a real browser, from Debian's packages
# when missing. Prints the path of the browser.
#
#   scripts/chromium.sh setup
set -euo pipefail

find_browser() {
  command -v chromium || command -v chromium-browser || true
}

case "${1:-setup}" in
  setup)
    if [ -z "$(find_browser)" ]; then
      echo "chromium.sh: installing chromium from Debian's packages" >&2
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >&2
    fi
    find_browser
    ;;
  *) echo "usage: $0 setup" >&2; exit 2 ;;
esac
