#!/usr/bin/env bash
# Install the Debian packages snapship needs to build, test, demo and benchmark.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

PKGS=(
	build-essential pkg-config
	libbtrfsutil-dev liburing-dev libzstd-dev libarchive-dev libjansson-dev
	libinih-dev libxxhash-dev libssl-dev libcmocka-dev libcurl4-openssl-dev libexpat1-dev libsystemd-dev
	btrfs-progs zstd tar acl attr xxhash util-linux python3 e2fsprogs cppcheck faketime
	clang libclang-rt-dev
	python3-junitparser python3-xmlschema python3-jsonschema
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
