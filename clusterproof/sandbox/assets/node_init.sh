#!/bin/sh
# node_init.sh -- makes one sandbox node look like its own host, then starts its sshd.
#
#   node_init.sh STATE_DIR NODE_NAME IPV4/LEN IPV6/LEN [RAIL1_IPV4/LEN]
#
# Runs INSIDE the node's network namespace and a fresh UTS + mount namespace, started by
# clusterproof.sandbox.cluster as:
#   nsenter --net=/run/netns/<ns> unshare --uts --mount --propagation private sh node_init.sh ...
# Everything below changes only this node's namespaces; the host's /etc, /root, /tmp and /sys are
# never touched (the mount namespace is private, nothing propagates back).
# Leaves behind: STATE_DIR/NODE/holder.pid (a process that keeps the namespaces alive, so that the
# sshd can be stopped and started again in the same node) and STATE_DIR/NODE/sshd.pid.
set -eu
state=$1 name=$2 ip4=$3 ip6=$4 rail1=${5:-}
d="$state/$name"

hostname "$name"

# The node's own interfaces, configured in one ip process (eth0 arrives here from the host side).
ip -batch - <<EOF
link set lo up
addr add $ip4 dev eth0
addr add $ip6 dev eth0 nodad
link set eth0 up
EOF
# The second rail, when the sandbox has one: eth1 on its own bridge and subnet.
if [ -n "$rail1" ]; then
  ip addr add "$rail1" dev eth1
  ip link set eth1 up
fi

# A sysfs that shows this netns's devices (/sys/class/net = lo + eth0). `ip netns exec` would do
# this too but drops the cgroup mounts, so the cgroup tree is moved back on top by hand.
mkdir -p "$d/.mnt/cgroup" "$d/.mnt/sysclass" "$d/.mnt/classtop/infiniband"
if mountpoint -q /sys/fs/cgroup; then mount --rbind /sys/fs/cgroup "$d/.mnt/cgroup"; fi
mount -t sysfs -o nosuid,nodev,noexec "sysfs_$name" /sys
if mountpoint -q "$d/.mnt/cgroup"; then mount --move "$d/.mnt/cgroup" /sys/fs/cgroup; fi

# The fake RoCE HCA. sysfs refuses mkdir, so a read-only overlay puts an empty `infiniband`
# directory over /sys/class, and STATE_DIR/NODE/ib is bound onto it (the host rewrites the GID files
# there to inject faults while the node runs). Kernels without overlayfs get a tmpfs that re-binds
# every real class directory instead (slower: two processes per class).
if ! mount -t overlay -o "lowerdir=$d/.mnt/classtop:/sys/class" "class_$name" /sys/class 2>/dev/null; then
  mount --rbind /sys/class "$d/.mnt/sysclass"
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec "class_$name" /sys/class
  for c in "$d/.mnt/sysclass"/*; do
    mkdir "/sys/class/${c##*/}"
    mount --rbind "$c" "/sys/class/${c##*/}"
  done
  umount -l "$d/.mnt/sysclass"
  mkdir /sys/class/infiniband
fi
mount --bind "$d/ib" /sys/class/infiniband

# Name resolution and the ssh client for node-to-node ssh (mpirun's launcher), and a root home
# without the host's shell start-up files (they run on every ssh command and orted launch).
mount --bind "$state/hosts" /etc/hosts
mount --bind "$state/ssh_config" /etc/ssh/ssh_config
mount --bind "$state/home" /root
# A sandbox with Slurm: its slurm.conf at the default path (/etc/slurm), as on a real cluster node.
if [ -d "$state/slurm/etc" ] && [ -d /etc/slurm ]; then mount --bind "$state/slurm/etc" /etc/slurm; fi

# A private /tmp, as real nodes have (OpenMPI session dirs, per-node scratch). The state dir
# stays visible at its own path on every node, playing the shared NFS directory.
case "$state" in
  /tmp/*)
    rel=${state#/tmp/}
    mkdir -p "$d/tmp/$rel"
    mount --bind "$state" "$d/tmp/$rel"
    ;;
esac
mount --rbind "$d/tmp" /tmp

# Keep the namespaces alive independently of sshd, then become the daemon (it forks and writes
# its pid file; this shell is gone once sshd has detached).
sleep infinity </dev/null >/dev/null 2>&1 &
echo $! >"$d/holder.pid"
exec /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
