#!/usr/bin/env bash
# Builds the v86 test guest from Debian packages (nothing binary is committed):
#   build/guest/bios.bin, vgabios.bin   SeaBIOS (package seabios)
#   build/guest/vmlinuz                 Debian i386 kernel (linux-image-*-686)
#   build/guest/initrd.img              busybox-static:i386 + the ATA/SCSI/ext2 modules + /init (plain cpio)
#   build/guest/manifest.json           versions and sizes of what went in
# The guest's /init loads the modules, formats /dev/sda with ext2 on first boot, mounts it on
# /mnt and runs a shell on the serial console (ttyS0).
#
# Idempotent: returns at once when the outputs exist (STRATADISK_GUEST_REBUILD=1 forces a rebuild).
# Never fails `npm test`: without root or apt it says so and exits 0; the v86 tests then skip.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/build/guest"
WORK="$ROOT/build/guest-work"
OUTPUTS=(bios.bin vgabios.bin vmlinuz initrd.img manifest.json)

have_all=1
for f in "${OUTPUTS[@]}"; do [ -s "$OUT/$f" ] || have_all=0; done
if [ "$have_all" = 1 ] && [ "${STRATADISK_GUEST_REBUILD:-0}" != 1 ]; then
  echo "build-guest: $OUT is complete"
  exit 0
fi

skip() {
  echo "build-guest: $1; the v86 guest was not built and the v86 tests will be skipped." >&2
  exit 0
}
[ "$(id -u)" -eq 0 ] || skip "not root (apt-get needs root): run 'sudo bash .ci/build-guest.sh'"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine"
command -v dpkg-deb >/dev/null 2>&1 || skip "no dpkg-deb on this machine"

set -e
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
fi
# A partly failed update (a mirror syncing) still leaves usable indexes: go on.
apt-get update -qq || echo "build-guest: apt-get update reported errors; trying with the indexes we have" >&2
# Host tools used below: cpio packs the initramfs, xz unpacks compressed modules.
for tool in cpio:cpio xz:xz-utils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null \
    || skip "cannot install ${tool#*:}"
done

# The kernel metapackage names the current ABI's image package.
kernel_pkg=$(apt-cache depends linux-image-686:i386 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
kernel_pkg=${kernel_pkg%:i386}
[ -n "$kernel_pkg" ] || skip "apt knows no linux-image-686:i386 (is the i386 architecture enabled?)"

rm -rf "$WORK"
mkdir -p "$WORK/debs" "$OUT"
cd "$WORK/debs"
apt-get download -qq seabios "busybox-static:i386" "$kernel_pkg:i386" || skip "apt-get download failed"

cd "$WORK"
for deb in debs/*.deb; do
  dpkg-deb -x "$deb" "$WORK/root"
done
R="$WORK/root"

cp "$R/usr/share/seabios/bios.bin" "$OUT/bios.bin"
cp "$R/usr/share/seabios/vgabios-stdvga.bin" "$OUT/vgabios.bin"
vmlinuz=$(ls "$R"/boot/vmlinuz-* | head -n 1)
cp "$vmlinuz" "$OUT/vmlinuz"
kver=$(basename "$vmlinuz"); kver=${kver#vmlinuz-}
moddir="$R/lib/modules/$kver"

# The modules the guest needs to see and mount the disk, with their dependencies. The package
# ships no modules.dep (depmod runs at install), so each module's own `depends=` field (its
# .modinfo section) is read. ext2 is served by the ext4 driver in Debian's kernels.
wanted=(ata_piix sd_mod ext4 crc32c_generic)
declare -A seen=()
order=()
find_module() {
  local name=$1 alt=${1//_/-}
  find "$moddir/kernel" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$alt.ko" -o -name "$alt.ko.xz" \) | head -n 1
}
resolve() {
  local name=$1 path deps dep
  path=$(find_module "$name")
  if [ -z "$path" ]; then
    # Built into the kernel: nothing to load.
    grep -qE "/($name|${name//_/-})\.ko" "$moddir/modules.builtin" && return 0
    echo "build-guest: module $name not found in $kver" >&2
    exit 1
  fi
  [ -n "${seen[$path]:-}" ] && return 0
  seen[$path]=1
  case "$path" in
    *.xz) deps=$(xz -dc "$path" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1) ;;
    *) deps=$(tr '\0' '\n' < "$path" | sed -n 's/^depends=//p' | head -n 1) ;;
  esac
  for dep in ${deps//,/ }; do resolve "$dep"; done
  order+=("${path#$moddir/}")
}
for m in "${wanted[@]}"; do resolve "$m"; done

# Kernel command line for v86 (the emulator passes it with the bzImage). Skipped initcalls cost
# the emulated CPU ~20 s and serve nothing here: the kprobe-event blacklist walk, loading the
# built-in X.509 certificates (module signatures are not enforced), ISA PnP probing.
CMDLINE="console=ttyS0 quiet mitigations=off noisapnp tsc=reliable initcall_blacklist=init_kprobe_trace,load_system_certificate_list"

I="$WORK/initramfs"
mkdir -p "$I"/{bin,sbin,dev,proc,sys,mnt,tmp,lib/modules,etc}
cp "$R/bin/busybox" "$I/bin/busybox"
: > "$I/lib/modules/load-order"
for path in "${order[@]}"; do
  name=$(basename "$path")
  case "$name" in
    *.xz) xz -dc "$moddir/$path" > "$I/lib/modules/${name%.xz}"; name=${name%.xz} ;;
    *.zst) zstd -dqc "$moddir/$path" > "$I/lib/modules/${name%.zst}"; name=${name%.zst} ;;
    *) cp "$moddir/$path" "$I/lib/modules/$name" ;;
  esac
  echo "$name" >> "$I/lib/modules/load-order"
done

cat > "$I/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t devtmpfs dev /dev 2>/dev/null || mount -t tmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m || echo "init: insmod $m failed"; done
# Wait for the disk (the ATA probe runs asynchronously).
i=0
while [ ! -b /dev/sda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/sda ]; then
  if ! mount -t ext2 /dev/sda /mnt 2>/dev/null; then
    echo "init: formatting /dev/sda (first boot)"
    mke2fs -F -i 65536 /dev/sda >/dev/null && mount -t ext2 /dev/sda /mnt
  fi
  grep -q " /mnt " /proc/mounts && echo "init: /dev/sda mounted on /mnt"
else
  echo "init: no /dev/sda"
fi
cd /mnt 2>/dev/null || cd /
echo "guest-ready"
export PS1='# '
while true; do setsid -c sh -i </dev/ttyS0 >/dev/ttyS0 2>&1; done
INIT
chmod 755 "$I/init"

# Uncompressed: the emulated CPU unpacks a gzip initramfs in ~7 s, a plain cpio in ~2 s.
(cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$OUT/initrd.img"

cat > "$OUT/manifest.json" <<JSON
{
  "kernel": "$kernel_pkg:i386 ($kver)",
  "packages": [$(for deb in debs/*.deb; do printf '"%s",' "$(basename "$deb")"; done | sed 's/,$//')],
  "modules": [$(for path in "${order[@]}"; do printf '"%s",' "$(basename "$path")"; done | sed 's/,$//')],
  "cmdline": "$CMDLINE"
}
JSON
rm -rf "$WORK"
echo "build-guest: wrote $OUT (kernel $kver, ${#order[@]} modules)"
