#!/usr/bin/env bash
# The Chromium that the browser tests drive (the dashboard and the report, rendered for real).
#
#   export ORCA_AUTOML_CHROMIUM="$(bash scripts/browser.sh)"   # install if missing; print its path
#
# Prints the path of a Chromium executable: $ORCA_AUTOML_CHROMIUM when set, else the first of
# chromium, chromium-browser, google-chrome on PATH; when none is there, installs the
# distribution's `chromium` package (as root; `apt-get update` only if the install needs it).
# Exits 1 with one line on stderr when there is no Chromium and it cannot install one.
set -euo pipefail

find_chromium() {
  if [ -n "${ORCA_AUTOML_CHROMIUM:-}" ]; then
    if [ -x "$ORCA_AUTOML_CHROMIUM" ]; then echo "$ORCA_AUTOML_CHROMIUM"; return; fi
    echo "browser.sh: ORCA_AUTOML_CHROMIUM=$ORCA_AUTOML_CHROMIUM is not an executable file" >&2
    exit 1
  fi
  local name
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  done
}

install_chromium() {
  if [ "$(id -u)" != 0 ]; then
    echo "browser.sh: Chromium is not installed: run as root, or apt-get install chromium" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser.sh: Chromium is not installed and there is no apt-get: install Chromium and set ORCA_AUTOML_CHROMIUM" >&2
    exit 1
  fi
  echo "browser.sh: installing Chromium from the distribution's packages" >&2
  local log
  log="$(mktemp)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >"$log" 2>&1; then
    apt-get update -qq >"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium >"$log" 2>&1 \
      || { echo "browser.sh: apt-get install chromium failed: $(tail -n 1 "$log")" >&2; rm -f "$log"; exit 1; }
  fi
  rm -f "$log"
}

path="$(find_chromium)"
if [ -z "$path" ]; then
  install_chromium
  path="$(find_chromium)"
fi
if [ -z "$path" ]; then
  echo "browser.sh: apt-get installed chromium, but no chromium is on PATH" >&2
  exit 1
fi
echo "$path"
