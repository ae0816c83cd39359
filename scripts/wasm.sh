# Shared by scripts/*-wasm/build.sh: fetch a Debian source tarball, compile C to one
# WebAssembly module with clang and lld, and write it into a TypeScript module as base64.
# Needs clang, lld and bzip2 (Debian 12: apt-get install clang lld bzip2). Sourced, it stops the script at
# the first failure, moves into the script's directory and makes it a scratch $work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch URL SHA256 DIR: the tarball at URL, checked, unpacked into DIR.
fetch() {
  local url=$1 sha256=$2 dir=$3 file="$3/${1##*/}"
  curl -fsSL -o "$file" "$url"
  echo "$sha256  $file" | sha256sum -c --quiet
  tar -xf "$file" -C "$dir"
}

# build OUT.wasm FLAGS... -- C FILES...: compile each file with FLAGS, link them, in that
# order, into OUT.wasm.
build() {
  local out=$1 flags=() objects=() c i=0
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
  [ $# -gt 0 ] || { echo "build: no -- before the C files" >&2; return 1; }
  shift
  for c in "$@"; do
    objects+=("${out%.wasm}.$((i++)).o")
    clang "${flags[@]}" -c "$c" -o "${objects[-1]}"
  done
  wasm-ld --no-entry -O2 --strip-all -o "$out" "${objects[@]}"
}

# module TS WASM NAME HEADER LICENCE: write TS (export const NAME = base64 of WASM), after
# the HEADER lines and the LICENCE file, each line a comment.
module() {
  local ts=$1 wasm=$2 name=$3 header=$4 licence=$5
  {
    printf '%s\n' "$header" | sed 's|^|// |'
    echo "// The module's sha256: $(sha256sum "$wasm" | cut -d' ' -f1). Its licence:"
    echo "//"
    sed 's|^|// |; s| $||' "$licence"
    echo "export const $name ="
    base64 -w 96 "$wasm" | sed 's/.*/  "&" +/;$ s/ +$/;/'
  } >"$ts.tmp"
  mv "$ts.tmp" "$ts"
  echo "wrote $ts ($(stat -c %s "$wasm") bytes of WebAssembly)"
}
