#!/bin/sh
# Install labctl from its GitHub release: the archive for this machine, checked against its
# SHA-256, into PREFIX/bin (default ~/.local/bin). Linux (x86_64, aarch64) and macOS
# (x86_64, arm64).
#
#   curl -fsSL https://github.com/labctl/labctl/releases/latest/download/install.sh | sh
#   sh install.sh [--version 0.1.0] [--prefix DIR]
#
# Environment: LABCTL_VERSION, LABCTL_PREFIX, LABCTL_DOWNLOAD_URL (another place laid out as
# the releases are, e.g. a mirror or file:///path for a test).
set -eu

version=${LABCTL_VERSION:-latest}
prefix=${LABCTL_PREFIX:-$HOME/.local}
base=${LABCTL_DOWNLOAD_URL:-https://github.com/labctl/labctl/releases}

say() { printf 'labctl install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=${2#v}; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a value"; prefix=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case $(uname -s) in
  Linux) os=unknown-linux-musl ;;
  Darwin) os=apple-darwin ;;
  *) die "no prebuilt labctl for $(uname -s); on Windows use WSL, elsewhere: cargo install labctl" ;;
esac
case $(uname -m) in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) die "no prebuilt labctl for $(uname -m); build it: cargo install labctl" ;;
esac
target="$arch-$os"
archive="labctl-$target.tar.gz"
if [ "$version" = latest ]; then
  url="$base/latest/download"
else
  url="$base/download/v$version"
fi

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl --proto '=https,file' --tlsv1.2 -fsSL "$1" -o "$2"
  elif command -v wget >/dev/null 2>&1; then
    wget -q "$1" -O "$2"
  else
    die "needs curl or wget"
  fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
say "downloading $url/$archive"
fetch "$url/$archive" "$work/$archive" || die "cannot download $url/$archive"
fetch "$url/$archive.sha256" "$work/$archive.sha256" || die "cannot download its checksum"

expected=$(cut -d ' ' -f 1 < "$work/$archive.sha256")
if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$work/$archive" | cut -d ' ' -f 1)
else
  actual=$(shasum -a 256 "$work/$archive" | cut -d ' ' -f 1)
fi
[ -n "$expected" ] && [ "$expected" = "$actual" ] \
  || die "checksum mismatch for $archive (expected $expected, got $actual): not installed"

tar -C "$work" -xzf "$work/$archive"
[ -f "$work/labctl-$target/labctl" ] || die "the archive holds no labctl-$target/labctl"
mkdir -p "$prefix/bin"
# Into place by a rename in the same folder: a running labctl is never half-overwritten. The
# temporary name is new (mktemp creates it, so a link planted at a fixed name is never
# followed) and goes away if anything fails.
new=$(mktemp "$prefix/bin/.labctl.XXXXXXXX") || die "cannot write to $prefix/bin"
trap 'rm -rf "$work"; rm -f "$new"' EXIT INT TERM
cat "$work/labctl-$target/labctl" >"$new"
chmod 0755 "$new"
mv -f "$new" "$prefix/bin/labctl"
say "installed $("$prefix/bin/labctl" --version) to $prefix/bin/labctl"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) say "add $prefix/bin to your PATH" ;;
esac
