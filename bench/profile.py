#!/usr/bin/env python3
"""Where the server's CPU time goes, by kind of work.

Reads `perf script` output of a profile recorded with call graphs (the benchmark's
`--perf DIR` records one per workload) and prints the share of samples per category:

    perf script -i DIR/ccopaque-sqlite-64.perf.data | python3 bench/profile.py

Each sample is put in the first category whose pattern matches a frame, walking from the
innermost frame outwards; kernel work is named by the system call it serves.
"""

import re
import sys
from collections import Counter

# (category, pattern over one frame's symbol); the first match from the leaf outwards wins.
RULES = [
    ("crypto (signing, hashing, HMAC)", r"aws_lc|ring_core|sha256|sha512|hmac|ecdsa|ed25519|(^|_)rsa_|(^|_)bn_|p256|fiat_"),
    ("SQLite engine", r"^sqlite3|^wal|^btree|^pager|^pcache|^vdbe|^unixShm|^unixLock|^unixRead|^unixWrite|^unixSync|^balance_|^moveTo|^getAndInitPage|^allocateCursor|^binColl|^freeSpace|^memjrnl"),
    ("database file I/O and locks (kernel)", r"__x64_sys_(pwrite64|pread64|fsync|fdatasync|fcntl|ftruncate|write|read)$"),
    ("thread hand-offs: futex wake/wait, scheduling", r"__x64_sys_futex|futex_|^schedule$|finish_task_switch|try_to_wake_up|__schedule"),
    ("network: TCP send/receive, epoll", r"__x64_sys_(sendto|recvfrom|writev|readv|epoll_wait|epoll_ctl|accept4)|(^|_)tcp_|(^|_)sock_|__sys_recvfrom|do_writev|(^|_)ip_|net_rx_action|napi|skb"),
    ("PostgreSQL wire protocol (sqlx-postgres)", r"sqlx_postgres"),
    ("sqlx driver and pool", r"sqlx_core|sqlx_sqlite|flume::"),
    ("tracing (spans, log formatting)", r"tracing_subscriber|tracing_core|tracing::|nu_ansi_term"),
    ("JSON (serde_json)", r"serde_json"),
    ("askama page rendering", r"askama"),
    ("memory allocation", r"^malloc|^free$|^cfree|_int_malloc|_int_free|malloc_consolidate|^realloc|unlink_chunk|__libc_(malloc|free|calloc|realloc)"),
    ("HTTP: hyper, axum, tower layers", r"hyper::|hyper_util|axum::|tower::|tower_http|http::"),
    ("tokio runtime", r"tokio::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in RULES]


def symbol_of(frame_line):
    # "    7f2a3c1 sqlite3VdbeExec+0x1f (/path/bin)" -> "sqlite3VdbeExec"
    parts = frame_line.strip().split(None, 1)
    if len(parts) < 2:
        return ""
    sym = parts[1]
    sym = re.sub(r"\s+\(.*\)$", "", sym)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    return sym


def classify(frames):
    for sym in frames:
        for name, pattern in COMPILED:
            if pattern.search(sym):
                return name
    return "other"


def main():
    counts = Counter()
    frames = []
    total = 0
    for line in sys.stdin:
        if not line.strip():
            if frames:
                counts[classify(frames)] += 1
                total += 1
                frames = []
            continue
        if line.startswith((" ", "\t")):
            frames.append(symbol_of(line))
    if frames:
        counts[classify(frames)] += 1
        total += 1
    if total == 0:
        print("no samples")
        return
    print(f"{total} samples")
    for name, n in counts.most_common():
        print(f"{100.0 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
