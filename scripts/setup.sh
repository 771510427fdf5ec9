#!/usr/bin/env bash
# Installs the Debian 12 packages Nibble builds and tests with. Idempotent: installs only what is
# missing, so a second run does nothing and needs no network.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libvulkan-dev libvulkan-volk-dev glslang-tools vulkan-validationlayers mesa-vulkan-drivers
  libglfw3-dev libimgui-dev doctest-dev nlohmann-json3-dev libpcre2-dev libicu-dev
  clang-14 libclang-rt-14-dev
  xvfb x11-apps imagemagick jq fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
