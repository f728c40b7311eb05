#!/usr/bin/env bash
# Vendored crates as patch series (vendor/README.md): vendor/<crate> is the pristine crates.io
# release pinned in vendor/patches/<crate>/upstream.toml plus vendor/patches/<crate>/NNNN-*.patch,
# applied in order.
#
#   scripts/vendor.sh fetch                     # download and verify every pinned .crate (cached)
#   scripts/vendor.sh apply <crate> <dir>       # <dir> := pristine <crate> + its patches, in order
#   scripts/vendor.sh check                     # pristine + patches == vendor/<crate>, every crate
#   scripts/vendor.sh new-patch <crate> <name>  # the next patch: vendor/<crate> minus the series
#   scripts/vendor.sh diff <a> <b>              # tree a -> tree b as a patch (git format, -p1)
#
# Downloads are cached outside the checkout, in ~/.cache/openorder/vendor, and verified against
# the pinned sha256 on every use: once fetched, check works offline. Needs curl, tar, sha256sum,
# diff and git (git apply and git diff --no-index only: no repository is involved).
set -euo pipefail
shopt -s inherit_errexit # and inside $(…)
here="$PWD" # <dir> arguments are relative to where the script was called from
cd "$(dirname "$0")/.."

PATCHES=vendor/patches
CACHE="${OPENORDER_CACHE:-$HOME/.cache/openorder}/vendor"

die() {
  echo "vendor.sh: $*" >&2
  exit 1
}

abs() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

# The crates with a patch series: the directories of vendor/patches.
crates() {
  local d
  for d in "$PATCHES"/*/; do basename "$d"; done
}

# pin <crate> <key>: a value of vendor/patches/<crate>/upstream.toml (`key = "value"`).
pin() {
  [ -f "$PATCHES/$1/upstream.toml" ] || die "no patch series for '$1' ($PATCHES/$1/upstream.toml)"
  sed -n "s/^$2 *= *\"\(.*\)\"\$/\1/p" "$PATCHES/$1/upstream.toml"
}

# The crates.io index's checksum of <crate> <version>; empty when the index is unreachable.
index_sha256() {
  local prefix="${1:0:2}/${1:2:2}" # crate names of four letters or more, as ours
  curl -fsSL --max-time 20 "https://index.crates.io/$prefix/$1" 2>/dev/null |
    grep -E "\"vers\": *\"${2//./\\.}\"" | grep -oE '"cksum": *"[0-9a-f]{64}"' | grep -oE '[0-9a-f]{64}' || true
}

# fetch_crate <crate>: prints the path of the verified pristine .crate, downloading it if missing.
fetch_crate() {
  local crate="$1" version sha file index
  version="$(pin "$crate" version)"
  sha="$(pin "$crate" sha256)"
  file="$CACHE/$crate-$version.crate"
  if [ ! -f "$file" ] || [ -z "$sha" ]; then
    index="$(index_sha256 "$crate" "$version")"
    [ -n "$sha" ] || die "$crate $version: pin sha256 = \"${index:-<from https://index.crates.io>}\" in $PATCHES/$crate/upstream.toml"
    if [ -z "$index" ]; then
      echo "vendor.sh: crates.io index unreachable; $crate $version is checked against its pin only" >&2
    elif [ "$index" != "$sha" ]; then
      die "$crate $version: pinned sha256 $sha, but the crates.io index says $index"
    fi
    echo "vendor.sh: downloading $crate $version from static.crates.io" >&2
    mkdir -p "$CACHE"
    curl -fsSL --retry 3 -o "$file.$$" "https://static.crates.io/crates/$crate/$crate-$version.crate" ||
      { rm -f "$file.$$"; die "$crate $version: download failed"; }
    mv "$file.$$" "$file"
  fi
  if ! echo "$sha  $file" | sha256sum --check --status; then
    rm -f "$file" # a bad download or a corrupted cache: the next run downloads it again
    die "$file: sha256 is not the pinned $sha (removed)"
  fi
  echo "$file"
}

# apply <crate> <dir>: unpack the pristine crate into <dir> (new or empty) and apply its series.
apply() {
  local crate="$1" dir="$2" file patch
  file="$(fetch_crate "$crate")"
  [ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  mkdir -p "$dir"
  tar -xzf "$file" -C "$dir" --strip-components=1 --no-same-owner
  for patch in "$PATCHES/$crate"/[0-9][0-9][0-9][0-9]-*.patch; do
    [ -f "$patch" ] || continue
    # git apply: all or nothing, no fuzz. The ceiling keeps it from finding a repository
    # above <dir> (vendor/ is in one), which would make it patch relative to that instead.
    (cd "$dir" && GIT_CEILING_DIRECTORIES="$(dirname "$PWD")" git apply --whitespace=nowarn) < "$patch" ||
      die "$patch does not apply to $crate $(pin "$crate" version) + the patches before it"
  done
}

# diff <a> <b>: tree a -> tree b as a git-format patch (a/… b/…, no renames); empty if equal.
diff_trees() {
  local parent
  parent="$(mktemp -d)"
  cp -R "$1" "$parent/a"
  cp -R "$2" "$parent/b"
  # --no-prefix on trees named a and b gives a/… and b/…, except that a new file reads
  # `diff --git b/x b/x` and a deleted one `a/x a/x`: made `a/x b/x`, as git diff writes them.
  (cd "$parent" && git diff --no-index --no-renames --no-color --no-ext-diff --no-prefix a b > diff) ||
    [ $? = 1 ] || die "git diff --no-index failed"
  sed -E 's#^diff --git [ab]/(.*) [ab]/#diff --git a/\1 b/#' "$parent/diff"
  rm -rf "$parent"
}

check() {
  local tmp crate failed=""
  tmp="$(mktemp -d)"
  trap "rm -rf '$tmp'" EXIT # (expanded now: $tmp is local)
  for crate in $(crates); do
    apply "$crate" "$tmp/$crate"
    diff -rq "$tmp/$crate" "vendor/$crate" > "$tmp/$crate.diff" || [ $? = 1 ] || die "cannot compare vendor/$crate"
    # Executable bits too (the one mode git keeps): diff -r compares contents only.
    (cd "$tmp/$crate" && find . -type f -perm /111 | sort) > "$tmp/x-series"
    (cd "vendor/$crate" && find . -type f -perm /111 | sort) > "$tmp/x-vendor"
    comm -3 "$tmp/x-series" "$tmp/x-vendor" | sed 's#^[[:space:]]*\./#Executable bit differs: #' >> "$tmp/$crate.diff"
    if [ -s "$tmp/$crate.diff" ]; then
      echo "vendor.sh: vendor/$crate is not $crate $(pin "$crate" version) + $PATCHES/$crate:" >&2
      sed "s#$tmp/$crate#(pristine+patches)#g" "$tmp/$crate.diff" >&2
      failed="$failed $crate"
    fi
  done
  [ -z "$failed" ] || die "mismatch in$failed (a change to vendor/ goes in a patch: vendor/README.md)"
  echo "vendor.sh: vendor/ is pristine + patches ($(crates | tr '\n' ' ' | sed 's/ $//'))" >&2
}

# new_patch <crate> <name>: writes what vendor/<crate> has beyond the series as its next patch.
new_patch() {
  local crate="$1" name="$2" tmp last next out
  tmp="$(mktemp -d)"
  trap "rm -rf '$tmp'" EXIT # (expanded now: $tmp is local)
  apply "$crate" "$tmp/series"
  last="$(ls "$PATCHES/$crate" | grep -oE '^[0-9]{4}' | sort -n | tail -n 1 || true)"
  next=$((10#${last:-0} + 1))
  out="$PATCHES/$crate/$(printf '%04d' "$next")-$name.patch"
  diff_trees "$tmp/series" "vendor/$crate" > "$tmp/diff"
  [ -s "$tmp/diff" ] || die "vendor/$crate has nothing beyond its series"
  {
    echo "Subject: $crate: ${name//-/ }"
    echo "Upstream: not offered"
    echo
    echo "vendor/README.md, $crate change $next: what it fixes, and why (write it here)."
    echo
    cat "$tmp/diff"
  } > "$out"
  echo "$out"
}

case "${1:-}" in
  fetch) for crate in $(crates); do fetch_crate "$crate" > /dev/null; done ;;
  apply) [ $# = 3 ] || die "usage: vendor.sh apply <crate> <dir>"; apply "$2" "$(abs "$3")" ;;
  check) check ;;
  new-patch) [ $# = 3 ] || die "usage: vendor.sh new-patch <crate> <name>"; new_patch "$2" "$3" ;;
  diff) [ $# = 3 ] || die "usage: vendor.sh diff <a> <b>"; diff_trees "$(abs "$2")" "$(abs "$3")" ;;
  *) die "usage: vendor.sh fetch | apply <crate> <dir> | check | new-patch <crate> <name> | diff <a> <b>" ;;
esac
