#!/usr/bin/env bash
# Reserves 2 MiB huge pages for corecache's item memory, so each shard's
# arena is backed by hugetlb pages instead of transparent huge pages.
# Usage: tuning/hugepages.sh MEGABYTES [THREADS]   (run as root)
# Each shard maps -m/threads rounded down to whole segments; hugetlb is used
# only when that size is a whole number of 2 MiB pages.
set -euo pipefail
mb="${1:?usage: $0 MEGABYTES [THREADS]}"
threads="${2:-$(nproc)}"
pages=$(( (mb + 1) / 2 + threads ))
current=$(cat /proc/sys/vm/nr_hugepages)
if [ "$current" -lt "$pages" ]; then
  echo "$pages" > /proc/sys/vm/nr_hugepages
fi
echo "nr_hugepages: $(cat /proc/sys/vm/nr_hugepages) (wanted $pages for -m $mb across $threads shards)"
grep -E 'HugePages_(Total|Free)' /proc/meminfo
