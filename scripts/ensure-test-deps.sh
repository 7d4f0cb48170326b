#!/bin/sh
# Installs the real components the tests run (TESTING.md) when they are missing and we are
# root on Debian; otherwise says what is missing. Tests skip a missing component locally and
# fail on it in CI (CI=true), so this script never fails the build by itself.
set -eu
need=""
command -v dockerd >/dev/null 2>&1 || need="$need docker.io"
command -v prometheus-alertmanager >/dev/null 2>&1 || need="$need prometheus-alertmanager"
command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
[ -x /usr/lib/postgresql/15/bin/postgres ] || need="$need postgresql"
[ -x /bin/busybox ] || need="$need busybox-static"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v docker-compose >/dev/null 2>&1 || need="$need docker-compose"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need="$need debootstrap"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test components:$need"
  apt-get update -qq
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
else
  echo "missing test components:$need (install them as root: apt-get install$need)" >&2
fi
