#!/usr/bin/env bash
# Install the Debian packages the sandbox cluster (with Slurm 22.05: munge, slurmctld, slurmd, slurm-client),
# the real RGW and the report check need, when missing.
# Idempotent: does nothing when every binary is present. Needs root (apt-get).
set -euo pipefail
declare -A need=(
  [/usr/sbin/sshd]=openssh-server [/usr/bin/ssh]=openssh-client [/usr/bin/mpirun]=openmpi-bin
  [/usr/bin/mpicc]=libopenmpi-dev [/usr/sbin/ip]=iproute2 [/usr/sbin/tc]=iproute2
  [/usr/bin/ceph-mon]=ceph-mon [/usr/bin/ceph-osd]=ceph-osd [/usr/bin/radosgw]=radosgw
  [/usr/bin/ceph]=ceph-common [/usr/bin/pdsh]=pdsh [/usr/bin/chromium]=chromium
  [/usr/sbin/munged]=munge [/usr/sbin/slurmctld]=slurmctld [/usr/sbin/slurmd]=slurmd [/usr/bin/srun]=slurm-client
)
missing=()
for bin in "${!need[@]}"; do [[ -x "$bin" ]] || missing+=("${need[$bin]}"); done
((${#missing[@]})) || exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) != 0 ]]; then
  echo "clusterproof: missing Debian packages: ${missing[*]}" >&2
  echo "clusterproof: install them as root (apt-get install ${missing[*]}); the sandbox also needs root" >&2
  exit 1
fi
echo "clusterproof: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
