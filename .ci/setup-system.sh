#!/usr/bin/env bash
# Installs the system tools the interop, NBD, resync and browser tests use, from Debian.
# Idempotent: returns at once when every tool is already on PATH. Never fails the build: when a
# tool cannot be installed (not root, no apt), it says what is missing and exits 0, and the tests
# that need that tool skip with a reason.
set -u

# tool -> Debian package that provides it
declare -A PACKAGE_OF=(
  [qemu-img]=qemu-utils
  [nbdcopy]=libnbd-bin
  [nbdinfo]=libnbd-bin
  [nbdkit]=nbdkit
  [rsync]=rsync
  [chromium]=chromium
  [cpio]=cpio
  [b3sum]=b3sum
  [casync]=casync
)
TOOLS=(qemu-img nbdcopy nbdinfo nbdkit rsync chromium cpio b3sum casync)

missing_tools=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done

if [ ${#missing_tools[@]} -eq 0 ]; then
  echo "setup-system: all tools present (${TOOLS[*]})"
  exit 0
fi

# Unique package list, in a stable order.
packages=()
for tool in "${missing_tools[@]}"; do
  pkg=${PACKAGE_OF[$tool]}
  case " ${packages[*]-} " in *" $pkg "*) ;; *) packages+=("$pkg") ;; esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing ${missing_tools[*]}; not root, so not installing." >&2
  echo "setup-system: install them with: sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  echo "setup-system: tests that need them will be skipped." >&2
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: missing ${missing_tools[*]} and no apt-get here; install ${packages[*]} by hand. Tests that need them will be skipped." >&2
  exit 0
fi

echo "setup-system: installing ${packages[*]} (for ${missing_tools[*]})"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
  echo "setup-system: apt-get update failed; tests that need ${missing_tools[*]} will be skipped." >&2
  exit 0
fi
if ! apt-get install -y -qq --no-install-recommends "${packages[@]}"; then
  echo "setup-system: apt-get install failed; tests that need the missing tools will be skipped." >&2
  exit 0
fi

still_missing=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || still_missing+=("$tool")
done
if [ ${#still_missing[@]} -ne 0 ]; then
  echo "setup-system: still missing after install: ${still_missing[*]}; their tests will be skipped." >&2
else
  echo "setup-system: done; all tools present."
fi
exit 0
