"""Write the NCCL_DEBUG=INFO fixtures in this directory from NCCL's format strings.

The hosts, pids, addresses and numbers are made up; the line formats follow each NCCL version (see
../shared/notes/nccl-debug-info.md §2). Run ``python tests/data/nccl_debug/make_fixtures.py [OUTDIR]``;
without OUTDIR it rewrites the fixtures next to this file (the output is deterministic).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def enc_gid(addr: str) -> str:
    b = ipaddress.IPv6Address(addr).packed
    return f"{int.from_bytes(b[:8], 'little'):X}/{int.from_bytes(b[8:], 'little'):X}"


def v4gid(ip: str) -> str:
    return f"::ffff:{ip}"


BUS = {0: "18000", 1: "2a000"}


@dataclass
class R:
    host: str
    pid: int
    dev: int
    rank: int
    ts: str = ""  # INFO timestamp prefix
    lines: list[str] = field(default_factory=list)

    def p(self, tid_off: int = 0) -> str:
        ts = self.ts
        if ts:  # NCCL_DEBUG_TIMESTAMP_LEVELS=WARN,INFO with "[%F %T.%3f] ": advance a few ms per line
            self.ms = getattr(self, "ms", int(ts[-5:-2])) + 3
            sec = int(ts[-8:-6]) + self.ms // 1000
            ts = f"{ts[:-8]}{sec:02d}.{self.ms % 1000:03d}] "
        return f"{ts}{self.host}:{self.pid}:{self.pid + tid_off} [{self.dev}] NCCL INFO "

    def info(self, text: str, tid_off: int = 0) -> None:
        self.lines.append(self.p(tid_off) + text)

    def warn(self, ts: str, where: str, text: str, tid_off: int = 0, func: str | None = None) -> None:
        f = f" ({func})" if func else ""
        self.lines.append("")
        self.lines.append(f"{ts}{self.host}:{self.pid}:{self.pid + tid_off} [{self.dev}] {where}{f} NCCL WARN {text}")


@dataclass
class Era:
    v: str
    cuda: str
    ll: str = "RoCE"
    ro: bool = True


def vt(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def chan(e: Era, ch: int, src: R, dst: R, direction: str | None, via: str) -> str:
    ver = vt(e.v)
    if ver >= (2, 18, 3):
        a, b = f"{src.rank}[{src.dev}]", f"{dst.rank}[{dst.dev}]"
    else:
        a, b = f"{src.rank}[{BUS[src.dev]}]", f"{dst.rank}[{BUS[dst.dev]}]"
    c = f"Channel {ch:02d}/0" if ver >= (2, 12) else f"Channel {ch:02d}"
    d = f"[{direction}] " if direction else ""
    return f"{c} : {a} -> {b} {d}via {via}"


def gid_line(e: Era, r: R, netdev: int, gid_index: int, addr: str, qpn: int, accept: bool) -> str:
    ver = vt(e.v)
    g = f"GID {gid_index} ({enc_gid(addr)})"
    if e.ll == "IB" and ver < (2, 22):
        return f"NET/IB: Dev {netdev} Port 1 qpn {qpn} mtu 5 LID {20 + netdev + 4 * r.rank}"
    if e.ll == "IB":
        return (f"NET/IB: NCCL Dev {netdev} IbDev {netdev} Port 1 qpn {qpn} mtu 5 LID {20 + netdev + 4 * r.rank} "
                f"subnet-prefix 18338657682652659712  FLID 0 fifoRkey=0x{qpn * 7:x} fifoLkey=0x{qpn * 7:x}")
    if ver >= (2, 29, 7):
        fn = "ncclIbAccept" if accept else "ncclIbConnect"
        return (f"NET/IB: {fn}: NCCL Dev {netdev} IbDev {netdev} Port 1 qp_num {qpn} mtu 5 {g} "
                f"ctsFifoRkey=0x{qpn * 13:x} ctsFifoLkey=0x{qpn * 13:x}")
    if ver >= (2, 27):
        return f"NET/IB: NCCL Dev {netdev} IbDev {netdev} Port 1 qpn {qpn} mtu 5 {g} fifoRkey=0x{qpn * 7:x} fifoLkey=0x{qpn * 7:x}"
    if ver >= (2, 20):
        return (f"NET/IB: NCCL Dev {netdev} IbDev {netdev} Port 1 qpn {qpn} mtu 5 query_ece={{supported=1, "
                f"vendor_id=0x15b3, options=0x0, comp_mask=0x0}} {g} fifoRkey=0x{qpn * 7:x} fifoLkey=0x{qpn * 7:x}")
    return f"NET/IB: Dev {netdev} Port 1 qpn {qpn} mtu 5 {g}"


@dataclass
class Node:
    host: str
    oob: str
    nics: list[str]
    nic_ips: list[str]
    link_local: bool = False
    gdr: bool = True
    ib_fail: str | None = None  # "verbs" | "nodev" -> socket
    macs: list[str] = field(default_factory=list)


def ll_gid(mac: str) -> str:
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui))


def run(e: Era, nodes: list[Node], ranks: list[R], *, nch: int = 2, pxn_ch: set[int] | None = None,
        nvls: bool = False, warns: dict[int, list[tuple[str, str, str | None]]] | None = None,
        env: dict[str, list[str]] | None = None, gid_env: dict[str, int] | None = None,
        plugin_lines: list[str] | None = None, net_name: str | None = None, collnet: bool = False,
        abort_mismatch: dict[int, str] | None = None, bare_version: bool = False,
        versions: dict[int, tuple[str, str]] | None = None) -> None:
    ver = vt(e.v)
    node_of = {n.host: n for n in nodes}
    n = len(ranks)
    hosts = list(dict.fromkeys(r.host for r in ranks))
    commid = 0x5E1D3C0FFEE0000 + sum(ord(c) for c in nodes[0].host) * 977 + int(e.v.replace(".", ""))
    qpn = [3100]
    strict_abort = any(nd.ib_fail == "strict" for nd in nodes)

    def socket(r: R) -> bool:
        return e.ll == "Socket" or node_of[r.host].ib_fail is not None

    def comm_of(r: R) -> str:
        return f"0x{0x5612a4c0b000 + r.rank * 0x1a4000 + r.pid * 0x10:x}"

    for r in ranks:
        node = node_of[r.host]
        rv, rcuda = (versions or {}).get(r.rank, (e.v, e.cuda))
        rver = vt(rv)
        comm = comm_of(r)
        first = r is next(x for x in ranks if (x.host, x.pid) == (r.host, r.pid))  # -g 2: one process, 2 ranks
        if not first:
            pass
        elif ver >= (2, 24):
            r.info(f"Bootstrap: Using eth0:{node.oob}<0>")
        elif ver >= (2, 12):
            r.info(f"Bootstrap : Using eth0:{node.oob}<0>")
        else:
            r.info(f"Bootstrap : Using [0]eth0:{node.oob}<0>")
        if ver >= (2, 13) and first:
            r.info("cudaDriverVersion 12080" if ver >= (2, 22) else "cudaDriverVersion 12020")
        if not first:
            pass
        elif rver >= (2, 22):
            r.info(f"NCCL version {rv}+cuda{rcuda}")
        elif r.rank == 0:  # <= 2.21: bare printf on stdout, plus an INFO copy only into NCCL_DEBUG_FILE
            if bare_version:
                r.lines.append(f"NCCL version {rv}+cuda{rcuda}")
            else:
                r.info(f"NCCL version {rv}+cuda{rcuda}")
        if rver >= (2, 29, 2) and first:
            r.info("NCCL git version v2.30.7-1 4c1e2f9a")
        for ln in plugin_lines or [] if first else []:
            r.info(ln)
        for ln in (env or {}).get(r.host, []) if first else []:
            r.info(ln)
        if gid_env and r.host in gid_env and first:
            r.info(f"NCCL_IB_GID_INDEX set by environment to {gid_env[r.host]}.")
        t = 71
        if node.ib_fail in ("verbs", "strict") and first:
            r.info("Failed to open libibverbs.so[.1]", t)
        elif node.ib_fail == "nodev" and first:
            r.info("NET/IB : No device found.", t)
        if node.ib_fail == "strict":  # NCCL_NET=IB: no fallback, init fails
            if first:
                r.info("Failed to initialize NET plugin IB", t)
                r.warn("[2026-05-03 17:44:08] ", "plugin/net.cc:334", "Failed to initialize any NET plugin", t)
                r.info("init.cc:1413 -> 2", t)
                r.info("init.cc:1703 -> 2 [Async thread]", t)
            continue
        if not first:
            pass
        elif not socket(r):
            devs = " ".join(f"[{i}]{nm}:1/{'IB/SHARP' if collnet else e.ll}" for i, nm in enumerate(node.nics))
            ro = "[RO]" if e.ro and ver >= (2, 12) else ""
            r.info(f"NET/IB : Using {devs} {ro}; OOB eth0:{node.oob}<0>", t)
            if rver >= (2, 18):
                for i, nm in enumerate(node.nics):
                    prov = "provider=Mlx5 " if rver >= (2, 27) else ""
                    ooo = " oooRqSize=0" if rver >= (2, 30) else ""
                    r.info(f"NET/IB: [{i}] {nm}:uverbs{i}:1/{e.ll} {prov}speed=400000 context=0x{0x55d3b2e0 + i * 0x2c0:x} "
                           f"pciPath=/sys/devices/pci0000:{0x15 + i * 0x22:02x}/0000:{0x16 + i * 0x22:02x}:00.0 ar=0{ooo}", t)
        elif first:
            r.info(f"NET/Socket : Using [0]eth0:{node.oob}<0>", t)
        netn = "Socket" if socket(r) else (net_name or "IB")
        if rver >= (2, 27) and not socket(r):
            r.info(f"Initialized NET plugin {netn}", t)
            r.info(f"Assigned NET plugin {netn} to comm", t)
        r.info(f"Using network {netn}", t)
        if ver >= (2, 13):
            r.info(f"DMA-BUF is available on GPU device {r.dev}", t)
        busid = BUS[r.dev]
        if ver >= (2, 19):
            pre = f"[Rank {r.rank}] " if ver >= (2, 30) else ""
            api = "ncclCommInitRankConfig " if ver >= (2, 23) else "ncclCommInitRank "
            r.info(f"{pre}{api}comm {comm} rank {r.rank} nranks {n} cudaDev {r.dev} nvmlDev {r.dev} busId {busid} "
                   f"commId 0x{commid:x} - Init START", t)
        if strict_abort:  # the other node gets as far as Init START, then mpirun kills the job
            continue
        if abort_mismatch and r.rank in abort_mismatch:
            r.warn("[2026-04-14 09:12:31] ", "init.cc:1046", abort_mismatch[r.rank], t)
            r.info("init.cc:1687 -> 5", t)
            r.info("init.cc:1732 -> 5", t)
            r.info("init.cc:1770 -> 5 [Async thread]", t)
            continue
        if ver >= (2, 13) and first:
            for i, nm in enumerate(node.nics if not socket(r) else ["eth0"]):
                st = "Enabled" if (node.gdr and not socket(r)) else "Disabled"
                if collnet:
                    r.info(f"NET/IB : GPU Direct RDMA (DMABUF) enabled for HCA {i} '{nm}", t)
                else:
                    r.info(f"NET/{'Socket' if socket(r) else 'IB'} : GPU Direct RDMA {st} for HCA {i} '{nm}'", t)
        r.info(f"Setting affinity for GPU {r.dev} to {'ffff,ffffffff' if r.dev == 0 else 'ffffffff,ffff0000,00000000'}", t)
        local = [x for x in ranks if x.host == r.host]
        if ver >= (2, 20):
            r.info(f"comm {comm} rank {r.rank} nRanks {n} nNodes {len(hosts)} localRanks {len(local)} "
                   f"localRank {local.index(r)} MNNVL 0", t)
        r.info(f"Pattern 4, crossNic 0, nChannels {nch}, bw 24.000000/24.000000, type NVL/PIX, sameChannels 1", t)
        for c in range(nch):
            r.info(f"{c:2d} : NET/0 GPU/{r.dev} GPU/{(r.dev + 1) % 2} NET/0", t)
        if r.rank == 0:
            for c in range(nch):
                order = "".join(f"{x.rank:5d}" for x in ranks)
                r.info(f"Channel {c:02d}/{nch:02d} :{order}", t)
        r.info(f"Trees [0] {(r.rank + 1) % n}/-1/-1->{r.rank}->-1 [1] {(r.rank + 1) % n}/-1/-1->{r.rank}->-1", t)
        r.info("P2P Chunksize set to 131072", t)
        if ver >= (2, 20):
            r.info(f"{nch} coll channels, {nch} collnet channels, {nch if nvls else 0} nvls channels, {nch} p2p channels, "
                   f"{nch} p2p channels per peer", t)
        elif ver >= (2, 17):
            r.info(f"{nch} coll channels, 0 nvls channels, {nch} p2p channels, {nch} p2p channels per peer", t)
        else:
            r.info(f"{nch} coll channels, {nch} p2p channels, {nch} p2p channels per peer", t)
        if nvls:
            r.info(f"NVLS multicast support is available on dev {r.dev}", t)
            r.info(f"NVLS comm {comm} headRank {local.index(r)} nHeads {len(local)} nvlsRanks {len(local)} "
                   f"buffSize 1048576 nvlsPerRankSize 201326592 nvlsTotalSize 402653184", t)

    proxy_tid = 89

    def net_conn(c: int, me: R, peer: R, direction: str, proxy: R | None = None) -> None:
        node = node_of[me.host]
        src, dst = (me, peer) if direction == "send" else (peer, me)
        if socket(me):
            me.info(chan(e, c, src, dst, direction, "NET/Socket/0"), proxy_tid)
            return
        nd = me.dev if proxy is None else proxy.dev
        gdr = "/GDRDMA" if node.gdr else ""
        px = f"({proxy.rank})" if proxy is not None else ""
        me.info(chan(e, c, src, dst, direction, f"NET/{net_name or 'IB'}/{nd}{px}{gdr}"), proxy_tid)
        owner = proxy or me  # with PXN the proxy rank's process owns the QP
        onode = node_of[owner.host]
        if onode.link_local:
            idx, addr = 0, ll_gid(onode.macs[nd])
        else:
            idx, addr = (gid_env or {}).get(owner.host, 3), v4gid(onode.nic_ips[nd])
        qpn[0] += 17
        owner.info(gid_line(e, owner, nd, idx, addr, qpn[0], direction == "receive"), proxy_tid + 3)

    if not abort_mismatch and not strict_abort:
        for c in range(nch):
            for i, r in enumerate(ranks):
                nxt = ranks[(i + 1) % n]
                prv = ranks[(i - 1) % n]
                if nxt.host != r.host:
                    proxy = None
                    if pxn_ch and c in pxn_ch:
                        proxy = next(x for x in ranks if x.host == r.host and x.dev == 0)
                        if proxy is r:
                            proxy = None
                    net_conn(c, r, nxt, "send", proxy)
                else:
                    via = "P2P/CUMEM/read" if ver >= (2, 18) else "P2P/IPC/read"
                    r.info(chan(e, c, r, nxt, None, via), 71)
                if prv.host != r.host:
                    net_conn(c, r, prv, "receive")
        for r in ranks:
            if ver >= (2, 24):
                gdr = 1 if node_of[r.host].gdr and not socket(r) else 0
                r.info(f"Connected all rings, use ring PXN {1 if pxn_ch else 0} GDR {gdr}", 71)
            else:
                r.info("Connected all rings", 71)
        for c in range(nch):  # trees: one leader per node (local index = channel) talks to the next node's
            leaders = []
            for h in hosts:
                local = [x for x in ranks if x.host == h]
                leaders.append(local[c % len(local)])
            for a, b in zip(leaders, leaders[1:], strict=False):
                for me, peer in ((a, b), (b, a)):
                    net_conn(c, me, peer, "send")
                    net_conn(c, me, peer, "receive")
        for r in ranks:
            r.info("Connected all trees", 71)
            if nvls:
                r.info("Connected NVLS tree", 71)
            if collnet:
                r.info(f"CollNet 00/0 : {r.rank} [send] via COLLNET/SHARP/0/GDRDMA", 71)
                r.info(f"CollNet 00/0 : {r.rank} [receive] via COLLNET/SHARP/0/GDRDMA", 71)
                r.info(f"rank {r.rank} Connected CollNet", 71)
            comm = comm_of(r)
            busid = BUS[r.dev]
            ids = f"comm {comm} rank {r.rank} nranks {n} cudaDev {r.dev}"
            if ver >= (2, 23):
                tail = f"ncclCommInitRankConfig {ids} nvmlDev {r.dev} busId {busid} commId 0x{commid:x} - Init COMPLETE"
            elif ver >= (2, 21):
                tail = f"ncclCommInitRank {ids} nvmlDev {r.dev} busId {busid} commId 0x{commid:x} - Init COMPLETE"
            elif ver >= (2, 18):
                tail = f"{ids} nvmlDev {r.dev} busId {busid} commId 0x{commid:x} - Init COMPLETE"
            elif ver >= (2, 16):
                tail = f"{ids} busId {busid} commId 0x{commid:x} - Init COMPLETE"
            else:
                tail = f"{ids} busId {busid} - Init COMPLETE"
            r.info(tail, 71)
            if ver >= (2, 23):
                r.info(f"Init timings - ncclCommInitRankConfig: rank {r.rank} nranks {n} total 0.{41 + r.rank} (kernels 0.18, "
                       f"alloc 0.02, bootstrap 0.04, allgathers 0.01, topo 0.07, graphs 0.01, connections 0.06, rest 0.02)", 71)
    for rk, ws in (warns or {}).items():
        r = next(x for x in ranks if x.rank == rk)
        for ts, where_text, func in ws:
            where, text = where_text.split(" ", 1)
            r.warn(ts, where, text, 93, func)


def write(d: str, ranks: list[R]) -> None:
    os.makedirs(os.path.join(OUT, d), exist_ok=True)
    by_proc: dict[tuple[str, int], list[str]] = {}
    for r in ranks:
        by_proc.setdefault((r.host, r.pid), []).extend(r.lines)
    for (h, pid), lines in by_proc.items():
        with open(os.path.join(OUT, d, f"nccl.{h}.{pid}.log"), "w") as f:
            f.write("\n".join(lines) + "\n")


def two_by_two(h1: str, h2: str, pids: tuple[int, int, int, int], ts2: str = "") -> list[R]:
    return [R(h1, pids[0], 0, 0), R(h1, pids[1], 1, 1), R(h2, pids[2], 0, 2, ts2), R(h2, pids[3], 1, 3, ts2)]


def nodes2(h1: str, h2: str, net: str, nics: tuple[str, str] = ("mlx5_0", "mlx5_1"), **kw2: object) -> list[Node]:
    a = Node(h1, f"10.{net}.0.11", list(nics), ["10.20.1.11", "10.20.2.11"], macs=["02:1c:73:4a:5b:6c", "02:1c:73:4a:5b:6d"])
    b = Node(h2, f"10.{net}.0.12", list(nics), ["10.20.1.12", "10.20.2.12"], macs=["02:1c:73:9e:07:a2", "02:1c:73:9e:07:a3"])
    for k, v in kw2.items():
        setattr(b, k, v)
    return [a, b]


# 1. RoCE with GDR, NCCL 2.23.4
rs = two_by_two("gpu-a01", "gpu-a02", (21437, 21438, 18802, 18803))
run(Era("2.23.4", "12.4"), nodes2("gpu-a01", "gpu-a02", "10"), rs,
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so. Using internal network plugin."])
write("roce_gdr", rs)

# 2. IB, NCCL 2.27.3
rs = two_by_two("gpu-h01", "gpu-h02", (7301, 7302, 6644, 6645))
run(Era("2.27.3", "12.9", ll="IB"), nodes2("gpu-h01", "gpu-h02", "50"), rs,
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so. "])
write("ib", rs)

# 3. Silent socket fallback, NCCL 2.19.3: gpu-b01 has no libibverbs, gpu-b02 sees no usable HCA
rs = two_by_two("gpu-b01", "gpu-b02", (31337, 31338, 29020, 29021))
nb = nodes2("gpu-b01", "gpu-b02", "30", ib_fail="nodev")
nb[0].ib_fail = "verbs"
run(Era("2.19.3", "12.3"), nb, rs,
    plugin_lines=["NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: No such file or directory "
                  "No plugin found (libnccl-net.so), using internal implementation"])
write("socket_fallback", rs)

# 4. GDR missing on one node, NCCL 2.21.5
rs = two_by_two("gpu-e01", "gpu-e02", (12001, 12002, 15360, 15361))
run(Era("2.21.5", "12.4"), nodes2("gpu-e01", "gpu-e02", "10", gdr=False), rs,
    plugin_lines=["NET/Plugin: No plugin found (libnccl-net.so)",
                  "NET/Plugin: Plugin load returned 2 : libnccl-net.so: cannot open shared object file: No such file or directory : when loading libnccl-net.so",
                  "NET/Plugin: Using internal network plugin."])
write("gdr_missing", rs)

# 5. Link-local GID on one node, NCCL 2.20.5 (default index 0 before 2.21; gpu-f01 sets 3)
rs = two_by_two("gpu-f01", "gpu-f02", (40960, 40961, 3702, 3703))
run(Era("2.20.5", "12.3"), nodes2("gpu-f01", "gpu-f02", "10", link_local=True), rs, gid_env={"gpu-f01": 3})
write("link_local_gid", rs)

# 6. Mixed versions (2.27.3 on gpu-g01, 2.26.2 on gpu-g02): NCCL aborts init
rs = [R("gpu-g01", 3101, 0, 0), R("gpu-g01", 3102, 1, 1), R("gpu-g02", 2877, 0, 2)]
ng = [Node("gpu-g01", "10.10.0.41", ["mlx5_0", "mlx5_1"], ["10.20.1.41", "10.20.2.41"]),
      Node("gpu-g02", "10.10.0.42", ["mlx5_0", "mlx5_1"], ["10.20.1.42", "10.20.2.42"])]
run(Era("2.27.3", "12.9"), ng, rs, versions={2: ("2.26.2", "12.8")},
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so. "],
    abort_mismatch={0: "Mismatched NCCL version detected : rank 0 version 22703 rank 2 version 22602",
                    1: "Mismatched NCCL version detected : rank 1 version 22703 rank 2 version 22602",
                    2: "Mismatched NCCL version detected : rank 2 version 22602 rank 0 version 22703"})
write("mixed_versions", rs)

# 7. Era 2.7: 2 nodes x 1 rank, IB, no [RO] slot, "Channel %02d :" with busIds
rs = [R("gpu-k01", 9071, 0, 0), R("gpu-k02", 11604, 0, 1)]
nk = [Node("gpu-k01", "10.60.0.1", ["mlx5_0"], ["10.61.0.1"]), Node("gpu-k02", "10.60.0.2", ["mlx5_0"], ["10.61.0.2"])]
run(Era("2.7.8", "11.0", ll="IB", ro=False), nk, rs,
    plugin_lines=["NET/Plugin : No plugin found (libnccl-net.so), using internal implementation"])
write("era_2_7", rs)

# 8. Era 2.14: RoCE 2x2, busId channel format, benign async WARN without timestamp
rs = two_by_two("gpu-m01", "gpu-m02", (8811, 8812, 9930, 9931))
run(Era("2.14.3", "11.7"), nodes2("gpu-m01", "gpu-m02", "10"), rs, gid_env={"gpu-m01": 3, "gpu-m02": 3},
    plugin_lines=["NET/Plugin : No plugin found (libnccl-net.so), using internal implementation"],
    warns={3: [("", "transport/net_ib.cc:93 NET/IB : Got async event : GID table change", None)]})
write("era_2_14", rs)

# 9. Era 2.26: RoCE 2x2, PXN on channel 1, WARN with timestamp
rs = two_by_two("gpu-p01", "gpu-p02", (5407, 5408, 5521, 5522))
run(Era("2.26.2", "12.8"), nodes2("gpu-p01", "gpu-p02", "10"), rs, pxn_ch={1},
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so. Using internal net plugin."],
    warns={2: [("[2026-02-09 14:03:27] ", "transport/net_ib.cc:437 NET/IB: read failed in ncclIbRoceGetVersionNum: Invalid argument", None)]})
write("era_2_26", rs)

# 10. Era 2.30.7: RoCE 2x2, NVLS used, PCI-ordered device list, WARN with (func), INFO timestamps on gpu-d02
rs = two_by_two("gpu-d01", "gpu-d02", (7120, 7121, 7712, 7713), ts2="[2026-06-20 08:01:09.482] ")
nd = nodes2("gpu-d01", "gpu-d02", "10", nics=("mlx5_1", "mlx5_0"))
run(Era("2.30.7", "13.0"), nd, rs, nvls=True, plugin_lines=["NET/Plugin: Could not find: libnccl-net.so"],
    warns={3: [("[2026-06-20 08:01:12] ", "transport/net_ib/common.cc:112 NET/IB : mlx5_0:1 GID table changed", "ncclIbAsyncThreadMain")]})
write("era_2_30", rs)

# 11. Two GPUs per process (nccl-tests -g 2), NCCL 2.24.3: one pid hosts ranks on cudaDev 0 and 1
rs = [R("gpu-q01", 61002, 0, 0), R("gpu-q01", 61002, 1, 1), R("gpu-q02", 60117, 0, 2), R("gpu-q02", 60117, 1, 3)]
run(Era("2.24.3", "12.6"), nodes2("gpu-q01", "gpu-q02", "10"), rs,
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so. Using internal network plugin."])
write("two_gpus_per_process", rs)

# 12. Strict mode (NCCL_NET=IB) on a node without libibverbs, NCCL 2.28.3: init fails instead of falling back
rs = two_by_two("gpu-n01", "gpu-n02", (24410, 24411, 23305, 23306))
run(Era("2.28.3", "12.9"), nodes2("gpu-n01", "gpu-n02", "10", ib_fail="strict"), rs,
    plugin_lines=["NET/Plugin: Could not find: libnccl-net.so"])
write("strict_no_verbs", rs)


def tagged(tag_of: dict[int, str], ranks: list[R], head: list[str], table: list[str], torn: tuple[int, str] | None,
           extra: list[tuple[int, str]]) -> str:
    """Interleave rank outputs like a launcher does: header from rank 0, NCCL lines round-robin, table."""
    out = [tag_of[0] + h for h in head]
    queues = [list(r.lines) for r in ranks]
    i = 0
    while any(queues):
        q = queues[i % len(queues)]
        rk = ranks[i % len(queues)].rank
        tag = tag_of[rk]
        for _ in range(3):
            if q:
                ln = q.pop(0)
                if torn is not None and rk == torn[0] and torn[1] in ln:
                    out.append(tag + ln[:57] + tag + ln[57:])  # Open MPI re-tags at a read-chunk boundary
                    torn = None
                else:
                    out.append(tag + ln)
        i += 1
    for pos, ln in extra:
        out.insert(pos, ln)
    out += [tag_of[0] + t for t in table]
    return "\n".join(out) + "\n"


os.makedirs(os.path.join(OUT, "combined"), exist_ok=True)
rs = [R("gpu-t01", 40211, 0, 0), R("gpu-t02", 38890, 0, 1)]
nt = [Node("gpu-t01", "10.10.0.71", ["mlx5_0"], ["10.20.1.71"]), Node("gpu-t02", "10.10.0.72", ["mlx5_0"], ["10.20.1.72"])]
run(Era("2.19.3", "12.3"), nt, rs, bare_version=True,
    plugin_lines=["NET/Plugin : dlerror=libnccl-net.so: cannot open shared object file: No such file or directory "
                  "No plugin found (libnccl-net.so), using internal implementation"])
head = ["# nThread 1 nGpus 1 minBytes 8 maxBytes 134217728 step: 8(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0",
        "#", "# Using devices",
        "#  Rank  0 Group  0 Pid  40211 on    gpu-t01 device  0 [0x18] NVIDIA H100 80GB HBM3",
        "#  Rank  1 Group  0 Pid  38890 on    gpu-t02 device  0 [0x18] NVIDIA H100 80GB HBM3"]
table = ["#", "#                                                              out-of-place                       in-place          ",
         "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong",
         "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       ",
         "           8             2     float     sum      -1    31.62    0.00    0.00      0    30.87    0.00    0.00      0",
         "          64            16     float     sum      -1    31.90    0.00    0.00      0    31.44    0.00    0.00      0",
         "         512           128     float     sum      -1    33.05    0.02    0.02      0    32.71    0.02    0.02      0",
         "        4096          1024     float     sum      -1    36.18    0.11    0.11      0    35.96    0.11    0.11      0",
         "       32768          8192     float     sum      -1    47.52    0.69    0.69      0    47.10    0.70    0.70      0",
         "      262144         65536     float     sum      -1    83.47    3.14    3.14      0    82.95    3.16    3.16      0",
         "     2097152        524288     float     sum      -1    221.6    9.46    9.46      0    220.9    9.49    9.49      0",
         "    16777216       4194304     float     sum      -1   1108.3   15.14   15.14      0   1107.1   15.15   15.15      0",
         "   134217728      33554432     float     sum      -1   8521.4   15.75   15.75      0   8519.8   15.75   15.75      0",
         "# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 4.90556 ", "#"]
text = tagged({0: "[1,0]<stdout>:", 1: "[1,1]<stdout>:"}, rs, head, table, torn=(1, "NET/IB : Using"),
              extra=[(0, "Warning: Permanently added 'gpu-t02' (ED25519) to the list of known hosts.")])
open(os.path.join(OUT, "combined", "mpirun_tag_output.txt"), "w").write(text)

rs = [R("gpu-s01", 52210, 0, 0), R("gpu-s02", 49377, 0, 1)]
ns = [Node("gpu-s01", "10.70.0.1", ["mlx5_0"], ["10.71.0.1"]), Node("gpu-s02", "10.70.0.2", ["mlx5_0"], ["10.71.0.2"])]
run(Era("2.28.3", "12.9", ll="IB"), ns, rs, net_name="IBext_v8", collnet=True,
    env={"gpu-s01": ["NCCL_COLLNET_ENABLE set by environment to 1."], "gpu-s02": ["NCCL_COLLNET_ENABLE set by environment to 1."]},
    plugin_lines=["Plugin Path : /opt/hpcx/nccl_rdma_sharp_plugin/lib/libnccl-net.so",
                  "P2P plugin v8 IBext_v8",
                  "Successfully loaded external network plugin /opt/hpcx/nccl_rdma_sharp_plugin/lib/libnccl-net.so",
                  "NET/Plugin: Loaded net plugin NCCL RDMA Plugin v8 (v8)",
                  "NET/Plugin: Loaded collnet plugin SHARP (v8)"])
head = ["# nccl-tests version 2.17.6 nccl-headers=22803 nccl-library=22803",
        "# Collective test starting: all_reduce_perf",
        "# nThread 1 nGpus 1 minBytes 1073741824 maxBytes 1073741824 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0",
        "#", "# Using devices",
        "#  Rank  0 Group  0 Pid  52210 on    gpu-s01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3",
        "#  Rank  1 Group  0 Pid  49377 on    gpu-s02 device  0 [0000:18:00] NVIDIA H100 80GB HBM3"]
table = ["#", "#                                                              out-of-place                       in-place          ",
         "#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong",
         "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)        ",
         "  1073741824     268435456     float     sum      -1  22418.5   47.90   47.90       0  22406.1   47.92   47.92       0",
         "# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 47.9091 ", "#", "# Collective test concluded: all_reduce_perf", "#"]
text = tagged({0: "0: ", 1: "1: "}, rs, head, table, torn=None, extra=[])
open(os.path.join(OUT, "combined", "srun_label.txt"), "w").write(text)
