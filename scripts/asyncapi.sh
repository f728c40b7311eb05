#!/usr/bin/env bash
# Validates docs/api/asyncapi.json with the AsyncAPI CLI (@asyncapi/cli from npm, installed
# once into ~/.cache/openorder/asyncapi-$VERSION, outside the checkout). Its usage metrics
# are off (CI=true and a config saying so): nothing leaves the machine.
#
#   scripts/asyncapi.sh setup      # install only
#   scripts/asyncapi.sh validate   # install if needed, then validate
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${ASYNCAPI_CLI_VERSION:-4.1.1}"
CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}"
DIR="$CACHE/asyncapi-$VERSION"
BIN="$DIR/node_modules/.bin/asyncapi"

setup() {
  if [ -x "$BIN" ] && [ -f "$DIR/.complete" ]; then return; fi
  echo "asyncapi.sh: installing @asyncapi/cli $VERSION from npm" >&2
  mkdir -p "$DIR"
  (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error "@asyncapi/cli@$VERSION" >/dev/null)
  touch "$DIR/.complete"
}

validate() {
  setup
  local config="$DIR/analytics.json"
  echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"openorder-tests"}' >"$config"
  CI=true ASYNCAPI_METRICS_CONFIG_PATH="$config" "$BIN" validate docs/api/asyncapi.json --fail-severity error
}

case "${1:-}" in
  setup) setup ;;
  validate) validate ;;
  *) echo "usage: $0 setup|validate" >&2; exit 2 ;;
esac
