#!/usr/bin/env bash
# The book (docs/book, mdBook): builds it and checks the links of its pages and of README.md
# (scripts/book_links.py). mdBook is installed once with cargo into
# ~/.cache/openorder/mdbook, outside the checkout.
#
#   scripts/book.sh setup   # install mdBook if missing; prints the binary's path
#   scripts/book.sh check   # build the book into docs/book/book (gitignored), then check links
#   scripts/book.sh links   # the link check alone (no mdBook needed)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${MDBOOK_VERSION:-0.5.4}"
CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}"
DIR="$CACHE/mdbook"
BIN="$DIR/bin/mdbook"

setup() {
  if [ ! -x "$BIN" ] || ! "$BIN" --version 2>/dev/null | grep -qx "mdbook v$VERSION"; then
    echo "book.sh: installing mdbook $VERSION with cargo" >&2
    cargo install mdbook --locked --version "$VERSION" --root "$DIR" >&2
  fi
  echo "$BIN"
}

links() {
  python3 scripts/book_links.py
}

check() {
  local mdbook
  mdbook="$(setup)"
  "$mdbook" build docs/book
  links
}

case "${1:-}" in
  setup) setup ;;
  check) check ;;
  links) links ;;
  *) echo "usage: $0 setup|check|links" >&2; exit 2 ;;
esac
