#!/usr/bin/env bash
# Prometheus' promtool, from Debian's package (`prometheus`) when missing, and the checks of
# what deploy/ gives operators: the alert rules (deploy/prometheus/openorder.rules.yml) and
# their unit tests (deploy/prometheus/tests/*.yml), the scrape configuration
# (deploy/prometheus/prometheus.yml) and the Grafana dashboard (deploy/grafana/openorder.json:
# valid JSON with a schemaVersion, every query valid PromQL), and, by scripts/prometheus_check.py,
# that every openorder_* series named there is one the services serve, that every alert has
# its annotations and runbook section, and a test case where it fires and one where it must not.
#
#   scripts/prometheus.sh setup   # installs promtool if missing; prints its path
#   scripts/prometheus.sh check   # all the checks above (installs promtool first if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

find_promtool() {
  command -v promtool || true
}

setup() {
  if [ -z "$(find_promtool)" ]; then
    echo "prometheus.sh: installing prometheus (for promtool) from Debian's packages" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    # Only promtool is wanted, not the package's server: where the package would start it on
    # installing (no systemd here, so its init script), Debian's policy-rc.d tells it not to
    # (exit 101), for the time of this install only.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
      $SUDO chmod +x /usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >&2
  fi
  find_promtool
}

check() {
  local promtool
  promtool="$(setup)"
  [ -n "$promtool" ] || { echo "prometheus.sh: no promtool" >&2; exit 1; }
  local started=$SECONDS
  echo "== promtool check rules deploy/prometheus/openorder.rules.yml"
  "$promtool" check rules deploy/prometheus/openorder.rules.yml
  echo "== promtool test rules deploy/prometheus/tests/*.yml"
  "$promtool" test rules deploy/prometheus/tests/*.yml
  echo "== promtool check config deploy/prometheus/prometheus.yml"
  "$promtool" check config deploy/prometheus/prometheus.yml
  echo "== scripts/prometheus_check.py: the dashboard's queries, the series named, runbooks, test cases"
  python3 scripts/prometheus_check.py --promtool "$promtool"
  echo "prometheus.sh: all checks passed in $((SECONDS - started)) s"
}

case "${1:-check}" in
  setup) setup ;;
  check) check ;;
  *) echo "usage: $0 setup|check" >&2; exit 2 ;;
esac
