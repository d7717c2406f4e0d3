#!/usr/bin/env bash
# Makes a Debian bookworm base image from Debian's own packages (debootstrap), for machines that
# cannot pull docker.io/library/debian: the image test and `make image-local` use it.
#
#   deploy/image/debian-base.sh [IMAGE]      default localhost/tidings-base:bookworm
#
# Kept once made: a second run returns at once. The mirror is the Debian one apt already uses.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${1:-localhost/tidings-base:bookworm}
bah=(buildah --storage-driver vfs)

bash "$here/../local/apt-ensure.sh" buildah=buildah debootstrap=debootstrap
if "${bah[@]}" inspect --type image "$image" >/dev/null 2>&1; then exit 0; fi

mirror=${DEBIAN_MIRROR:-$(sed -n 's|^URIs: *\(http[^ ]*/debian\)/*$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
container=
cleanup() {
  [[ -z $container ]] || "${bah[@]}" rm "$container" >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT

echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
container=$("${bah[@]}" from scratch)
mnt=$("${bah[@]}" mount "$container")
cp -a "$root"/. "$mnt"/
"${bah[@]}" umount "$container" >/dev/null
"${bah[@]}" commit -q "$container" "$image" >/dev/null
echo "made $image"
