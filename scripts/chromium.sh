#!/usr/bin/env bash
# Headless Chromium and its WebDriver (chromedriver) for the tests that load pages in a real
# browser, from Debian's packages (`chromium`, `chromium-driver`) when missing. Prints the
# path of the browser.
#
#   scripts/chromium.sh setup
set -euo pipefail

find_browser() {
  command -v chromium || command -v chromium-browser || true
}

find_driver() {
  command -v chromedriver || { [ -x /usr/lib/chromium/chromedriver ] && echo /usr/lib/chromium/chromedriver; } || true
}

case "${1:-setup}" in
  setup)
    if [ -z "$(find_browser)" ] || [ -z "$(find_driver)" ]; then
      echo "chromium.sh: installing chromium and chromium-driver from Debian's packages" >&2
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
    fi
    find_browser
    ;;
  *) echo "usage: $0 setup" >&2; exit 2 ;;
esac
