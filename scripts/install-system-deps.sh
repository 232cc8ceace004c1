#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: PostgreSQL, Prometheus,
# Prometheus Alertmanager, git and Chromium for the browser tests (Go 1.25+ for the control plane build comes with the machine). Does nothing when they are already there.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v git >/dev/null 2>&1 || need+=(git)
[[ -x /usr/bin/chromium ]] || need+=(chromium)  # the playground's browser tests
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start their services; the tests run their own instances.
systemctl disable --now postgresql prometheus prometheus-alertmanager >/dev/null 2>&1 || true
