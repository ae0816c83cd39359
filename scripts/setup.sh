#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for crecipe: host tools (apt-get, when root;
# otherwise the exact apt-get line is printed) and the npm dependencies.
# Usage: scripts/setup.sh [--for-tests]
set -euo pipefail
cd "$(dirname "$0")/.."

# command (or file) → Debian package that has it
declare -A need=(
  [cc]=gcc [make]=make [busybox]=busybox-static [cpio]=cpio [qemu-system-x86_64]=qemu-system-x86
  [mmdebstrap]=mmdebstrap [debootstrap]=debootstrap [dockerd]=docker.io [runc]=runc
  [skopeo]=skopeo [umoci]=umoci [newuidmap]=uidmap [pigz]=pigz [unshare]=util-linux
  [setpriv]=util-linux [hyperfine]=hyperfine [fakeroot]=fakeroot [gzip]=gzip [tar]=tar
  [zstd]=zstd [mknod]=coreutils [xargs]=findutils [getfattr]=attr
  [zsync]=zsync [zsyncmake]=zsync [casync]=casync # bench: peers of crecipe fetch
  [crun]=crun [podman]=podman [systemd-nspawn]=systemd-container
  [docker-registry]=docker-registry [htpasswd]=apache2-utils # tests: a loopback registry, with basic auth
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
compgen -G "/boot/vmlinuz-*" >/dev/null || missing+=(linux-image-amd64)
[ -x /usr/bin/time ] || missing+=(time) # the benchmarks read peak memory from GNU time
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)

if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing host packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

# npm dependencies, exactly as the lock file says (npm ci, what CI systems run; once, and
# again when package.json or the lock file is newer than the install)
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

if [ "${1:-}" = --for-tests ] && [ "$(id -u)" = 0 ]; then
  # An unprivileged user with subuids, for the rootless tests.
  if ! id crecipe-test >/dev/null 2>&1; then
    useradd -m -s /bin/bash crecipe-test
  fi
  grep -q '^crecipe-test:' /etc/subuid || echo 'crecipe-test:200000:65536' >> /etc/subuid
  grep -q '^crecipe-test:' /etc/subgid || echo 'crecipe-test:200000:65536' >> /etc/subgid
fi
exit 0
