#!/usr/bin/env bash
# Installs the Debian packages given as arguments unless each one's command is already there.
#
#   deploy/local/apt-ensure.sh COMMAND=PACKAGE [COMMAND=PACKAGE...]     e.g. chromium=chromium
#
# A fresh machine (CI's included) starts without the tools some tests drive (a browser, buildah,
# kubectl, promtool); targets that need one call this first. Needs root, as on these machines.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
for pair in "$@"; do
  [[ $pair == *=* ]] || die "usage: apt-ensure.sh COMMAND=PACKAGE... (got '$pair')"
  command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
done
((${#missing[@]} > 0)) || exit 0

command -v apt-get >/dev/null || die "missing ${missing[*]}: install them with your package manager"
((EUID == 0)) || die "missing ${missing[*]}: install them as root (apt-get install ${missing[*]})"
say "installing Debian packages: ${missing[*]}"
# Two installs at once (two make targets, two checkouts) wait for each other instead of failing.
lock_wait=(-o DPkg::Lock::Timeout=300)
apt-get "${lock_wait[@]}" update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get "${lock_wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
