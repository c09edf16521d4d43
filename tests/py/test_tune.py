"""tuning/corecache-tune on recorded hosts (--root: a copy of the /proc and
/sys files it reads and writes): show and a dry-run apply change nothing,
apply --yes makes exactly the planned changes and records them, and undo
restores every file byte for byte, also after a second apply.

Two hosts: the 2-vCPU virtio VM this project runs on (values recorded from
it; every CPU runs a worker, so NIC interrupts are left alone), and a
4-CPU host with a 2-queue NIC running -t 2 (interrupts, RPS and XPS move).
"""

import os
import subprocess
import sys

import pytest

TUNE = os.path.join(os.path.dirname(__file__), "..", "..", "tuning", "corecache-tune")


def write(root, path, text):
    p = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text + "\n")


def common_files(root, cpus, thp):
    write(root, "/sys/devices/system/cpu/online", cpus)
    write(root, "/sys/kernel/mm/transparent_hugepage/enabled", thp)
    write(root, "/proc/sys/vm/nr_hugepages", "0")
    write(root, "/proc/sys/net/core/somaxconn", "4096")
    write(root, "/proc/sys/net/ipv4/tcp_max_syn_backlog", "2048")
    write(root, "/proc/sys/net/ipv4/ip_local_port_range", "32768\t60999")
    write(root, "/proc/cmdline", "console=ttyS0 quiet")


def nic(root, name, pci, irqs, rx, tx, affinity):
    """A NIC as sysfs shows a virtio one: class/net/NAME/device -> virtioN,
    whose PCI parent holds msi_irqs."""
    dev = os.path.join(root, "sys/devices/pci0000:00", pci)
    os.makedirs(os.path.join(dev, "msi_irqs"), exist_ok=True)
    for i in irqs:
        open(os.path.join(dev, "msi_irqs", str(i)), "w").close()
        write(root, f"/proc/irq/{i}/smp_affinity_list", affinity)
    virtio = os.path.join(dev, "virtio2")
    os.makedirs(os.path.join(virtio, "net", name, "queues"), exist_ok=True)
    os.symlink("../..", os.path.join(virtio, "net", name, "device"))
    os.makedirs(os.path.join(root, "sys/class/net"), exist_ok=True)
    os.symlink(
        os.path.relpath(os.path.join(virtio, "net", name), os.path.join(root, "sys/class/net")),
        os.path.join(root, "sys/class/net", name),
    )
    for q, mask in rx.items():
        write(root, f"/sys/class/net/{name}/queues/{q}/rps_cpus", mask)
    for q, mask in tx.items():
        write(root, f"/sys/class/net/{name}/queues/{q}/xps_cpus", mask)


def recorded_vm(root):
    """This project's host: 2 vCPUs, virtio eth0 with one queue pair, THP
    madvise, no hugetlb pages, Debian's sysctl defaults; lo and ifb have no
    device and are not NICs."""
    common_files(root, "0-1", "always [madvise] never")
    nic(root, "eth0", "0000:00:03.0", [37, 38, 39], {"rx-0": "0"}, {}, "0-1")
    # xps_cpus is listed but unreadable on a single-queue virtio NIC: absent.
    os.makedirs(os.path.join(root, "sys/class/net/eth0/queues/tx-0"))
    os.makedirs(os.path.join(root, "sys/devices/virtual/net/lo"))
    os.symlink("../../devices/virtual/net/lo", os.path.join(root, "sys/class/net/lo"))


def four_cpus(root):
    common_files(root, "0-3", "always madvise [never]")
    nic(root, "eth0", "0000:00:03.0", [40, 41, 42, 43, 44],
        {"rx-0": "0", "rx-1": "0"}, {"tx-0": "0", "tx-1": "0"}, "0-3")


def snapshot(root, skip):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not p.startswith(skip):
                with open(p) as fh:
                    out[os.path.relpath(p, root)] = fh.read()
    return out


def selected(text):
    if "[" in text:
        return text.split("[")[1].split("]")[0] + "\n"
    return text


def tune(root, *args):
    r = subprocess.run(
        [sys.executable, TUNE, "--root", str(root), "--conf", "/no.conf", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def state_dir(root):
    return os.path.join(str(root), "var")


@pytest.mark.parametrize("host", [recorded_vm, four_cpus])
def test_dry_run_then_apply_then_undo_restores_exactly(tmp_path, host):
    host(str(tmp_path))
    before = snapshot(str(tmp_path), state_dir(tmp_path))
    shown = tune(tmp_path, "show")
    dry = tune(tmp_path, "apply")
    assert "dry run: nothing changed" in dry
    dry2 = tune(tmp_path, "apply", "--dry-run", "--yes")
    assert "dry run: nothing changed" in dry2
    assert snapshot(str(tmp_path), state_dir(tmp_path)) == before
    assert not os.path.exists(os.path.join(tmp_path, "var/lib/corecache/tune-state.json"))
    planned = [l for l in dry.splitlines() if l.startswith("would set ")]
    assert len(planned) == int(shown.split("apply would change ")[1].split()[0])

    tune(tmp_path, "apply", "--yes")
    after = snapshot(str(tmp_path), state_dir(tmp_path))
    changed = {k for k in after if after[k] != before[k]}
    assert len(changed) == len(planned), (changed, planned)
    assert "nothing to change" in tune(tmp_path, "apply")
    # A second apply with other settings keeps the first originals.
    tune(tmp_path, "--memory", "1024", "apply", "--yes")
    assert "would restore" in tune(tmp_path, "undo")
    assert snapshot(str(tmp_path), state_dir(tmp_path)) != before
    tune(tmp_path, "undo", "--yes")
    restored = snapshot(str(tmp_path), state_dir(tmp_path))
    # A sysfs selector reads back as "always madvise [never]" after "never"
    # is written to it; a plain file keeps what was written.
    assert restored.keys() == before.keys()
    for k, v in before.items():
        assert restored[k] in (v, selected(v)), (k, restored[k], v)
    assert not os.path.exists(os.path.join(tmp_path, "var/lib/corecache/tune-state.json"))


def test_recorded_vm_plan(tmp_path):
    recorded_vm(str(tmp_path))
    out = tune(tmp_path, "apply")
    assert "/proc/sys/vm/nr_hugepages: 0 -> 34" in out  # -m 64: 32 pages + 1 per worker
    assert "ip_local_port_range" in out and "tcp_max_syn_backlog: 2048 -> 4096" in out
    assert "somaxconn" not in out  # already 4096
    assert "transparent_hugepage" not in out  # madvise already
    assert "/proc/irq/" not in out and "rps_cpus" not in out
    assert "all 2 CPUs run workers" in out
    assert "isolcpus" not in out


def test_four_cpus_moves_interrupts_off_the_workers(tmp_path):
    four_cpus(str(tmp_path))
    out = tune(tmp_path, "--threads", "2", "--memory", "1024", "apply", "--yes")
    assert "nr_hugepages: 0 -> 514" in out
    for irq in (40, 41, 42, 43, 44):
        with open(tmp_path / f"proc/irq/{irq}/smp_affinity_list") as f:
            assert f.read().strip() == "2,3"
    for q in ("rx-0", "rx-1"):
        with open(tmp_path / f"sys/class/net/eth0/queues/{q}/rps_cpus") as f:
            assert f.read().strip() == "c"
    # XPS: CPUs 0 and 2 on tx-0, 1 and 3 on tx-1.
    with open(tmp_path / "sys/class/net/eth0/queues/tx-0/xps_cpus") as f:
        assert f.read().strip() == "5"
    with open(tmp_path / "sys/class/net/eth0/queues/tx-1/xps_cpus") as f:
        assert f.read().strip() == "a"
    with open(tmp_path / "sys/kernel/mm/transparent_hugepage/enabled") as f:
        assert f.read().strip() == "madvise"
    assert "isolcpus=managed_irq,domain,0,1 nohz_full=1 rcu_nocbs=1 irqaffinity=2,3" in out
    assert "IRQBALANCE_BANNED_CPULIST=0,1" in out


def test_threads_and_memory_come_from_the_conf(tmp_path):
    four_cpus(str(tmp_path))
    conf = tmp_path / "corecache.conf"
    conf.write_text("# comment\n-m 256 -p 11211\n-t 3\n")
    r = subprocess.run(
        [sys.executable, TUNE, "--root", str(tmp_path), "--conf", "/corecache.conf", "show"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "-m 256 MB, -t 3: worker CPUs 0,1,2, spare CPUs 3" in r.stdout


def test_threads_default_as_corecache_does(tmp_path):
    """Without -t, corecache runs one worker per CPU but no more than -m
    gives 8 MiB each: -m 16 on four CPUs is two workers."""
    four_cpus(str(tmp_path))
    for memory, line in (("16", "-m 16 MB, -t 2: worker CPUs 0,1, spare CPUs 2,3"),
                         ("1024", "-m 1024 MB, -t 4: worker CPUs 0,1,2,3")):
        out = tune(tmp_path, "--memory", memory, "show")
        assert line in out, out
