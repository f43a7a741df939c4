#!/usr/bin/env bash
# Install Debian/Ubuntu packages (as root, or through sudo when it exists): the one place set-up
# scripts reach for the system package manager.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
command -v apt-get >/dev/null || { echo "cannot install $*: no apt-get on this machine; install it by hand" >&2; exit 1; }
echo ">> installing $* with apt-get"
$SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
