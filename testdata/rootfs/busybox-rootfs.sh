#!/bin/sh
# Builds a minimal busybox root filesystem from Debian's busybox-static package.
#   testdata/rootfs/busybox-rootfs.sh DEST
# DEST gets /bin/busybox, one symlink per applet in /bin, /etc/passwd, /etc/group, /tmp (1777),
# and the usual empty directories. Used as the base image of tests (imported with `kiln import`)
# and as a plain rootfs by the executor tests. Deterministic: same input package, same tree.
set -eu
dest=${1:?usage: busybox-rootfs.sh DEST}
bb=/bin/busybox
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "busybox-rootfs.sh: package busybox-static is not installed (apt-get install busybox-static)" >&2
    exit 1
fi
mkdir -p "$dest"
cd "$dest"
mkdir -p bin etc tmp root home proc sys dev var/tmp usr/bin usr/sbin sbin
chmod 1777 tmp var/tmp
chmod 0700 root
cp /bin/busybox bin/busybox
chmod 0755 bin/busybox
for applet in $(bin/busybox --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "bin/$applet"
done
cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
GROUP
chmod 0644 etc/passwd etc/group
# a fixed mtime makes imports of this tree reproducible
find . -exec touch -h -d '2000-01-01T00:00:00Z' {} +
