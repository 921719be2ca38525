#!/bin/bash
# phoenix feature "base": the essentials every VM gets — CA certificates and curl, unattended
# security upgrades, UTC time. Idempotent: re-running changes nothing that is already in place.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_get() { apt-get -y -q -o DPkg::Lock::Timeout=600 "$@"; }

is_installed() {
    # shellcheck disable=SC2016  # ${Status} is dpkg-query's format field, not a shell variable
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for pkg in ca-certificates curl gnupg unattended-upgrades; do
    is_installed "$pkg" || missing+=("$pkg")
done
if [ -n "${missing[*]}" ]; then
    apt_get update
    apt_get install "${missing[@]}"
fi

# Write a file only when its content differs, so re-runs do not touch timestamps.
write_if_changed() {
    local target="$1" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    if cmp -s "$tmp" "$target"; then
        rm -f "$tmp"
    else
        install -m 0644 "$tmp" "$target"
        rm -f "$tmp"
    fi
}

write_if_changed /etc/apt/apt.conf.d/20auto-upgrades <<'CONF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
CONF

if [ "$(readlink -f /etc/localtime)" != "/usr/share/zoneinfo/Etc/UTC" ]; then
    ln -sf /usr/share/zoneinfo/Etc/UTC /etc/localtime
fi
echo "Etc/UTC" | write_if_changed /etc/timezone

echo "phoenix feature base: done"
