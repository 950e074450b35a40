#!/usr/bin/env bash
# Install the Debian packages taae's quickstart and tests use, when missing (apt-get, through sudo when not root).
#   bash scripts/system_packages.sh                  # the quickstart's: ffmpeg, the demo prompts, Codec 2
#   bash scripts/system_packages.sh ffmpeg chromium  # any list
# The library never calls apt-get itself: `python -m taae.data.demo` only checks and names what is missing.
set -euo pipefail
PACKAGES=("$@")
[ ${#PACKAGES[@]} -gt 0 ] || PACKAGES=(ffmpeg asterisk-core-sounds-en-g722 codec2)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "missing packages ${missing[*]} and no apt-get here: install them by hand" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "missing packages ${missing[*]}: not root and no sudo" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing ${missing[*]}" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
