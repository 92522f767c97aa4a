"""Finding the runs in an address stream, exactly.

Trace tools and pycachesim take one address per access. Such a stream has runs (a weight row
read line after line, a membrane block read and written element by element) but they come
interleaved with other streams, one line at a time. :func:`find_runs` turns the stream into
line runs for :class:`hwmodels.cache.CacheHierarchy` without changing any counter:

- **Extension.** A one-line access to the line after a pending run's last one (same core,
  task and kind) extends the run.
- **Repeats.** An access to a pending run's last line by the same core is an L1 hit on the
  most recent line of its set, which changes nothing but the counters: a load, or a store to
  a line already written, is counted as a first-level hit and dropped. A store after the load
  of the same line (same task) makes the run's lines *read-modify-write* lines (kind 3: each
  line loaded, then stored), so ``v += w`` element by element is still one run.
- **Reordering.** Pending runs are kept open while other accesses go by, and are emitted
  later. That moves accesses past one another, which is exact only where they cannot meet in
  any set of any level: lines whose indices differ modulo ``key`` (the greatest common
  divisor of all levels' set counts) never share a set. So every line of a pending run owns
  its key; an access whose key is owned by another pending run emits that run first, and the
  pending runs are pairwise key-disjoint, so their order does not matter.
- **Run starts.** Every one-line access starts a run of its own (that is what line-by-line
  replay counts), so a run found by this module marks every line as a run start
  (``rs = 2``); an access of several lines keeps ``rs = 1`` (its first line) and is not
  merged with others.

Only hierarchies whose every level is a :class:`~hwmodels.cache.LRUCache` use it (a user level
receives the requests as given).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_P = 16  # pending runs


@njit(cache=True, inline="always")
def _key(x, key):  # pragma: no cover - compiled
    """The class of line ``x`` (lines of different classes never share a set)."""
    return x & (key - 1) if key & (key - 1) == 0 else x % key


@njit(cache=True, inline="always")
def _put(o_start, o_count, o_kind, o_core, o_task, o_rs, m, f, cnt, k, c,
         t):  # pragma: no cover - compiled
    """Emit an access as given (its run starts at its first line)."""
    o_start[m] = f
    o_count[m] = cnt
    o_kind[m] = k
    o_core[m] = c
    o_task[m] = t
    o_rs[m] = 1
    return m + 1


@njit(cache=True, inline="always")
def _flush(p, p_start, p_end, p_kind, p_core, p_task, p_half, used, owner, key, o_start,
           o_count, o_kind, o_core, o_task, o_rs, m):  # pragma: no cover - compiled
    """Emit pending run ``p`` (its last line as a plain load if its store is still
    missing), free its keys; returns the outputs written."""
    a = p_start[p]
    b = p_end[p]
    if p_half[p]:
        if b - 1 > a:
            o_start[m] = a
            o_count[m] = b - 1 - a
            o_kind[m] = 3
            o_core[m] = p_core[p]
            o_task[m] = p_task[p]
            o_rs[m] = 2
            m += 1
        o_start[m] = b - 1
        o_count[m] = 1
        o_kind[m] = 0
    else:
        o_start[m] = a
        o_count[m] = b - a
        o_kind[m] = p_kind[p]
    o_core[m] = p_core[p]
    o_task[m] = p_task[p]
    o_rs[m] = 2
    m += 1
    for x in range(a, min(b, a + key)):
        kx = _key(x, key)
        if owner[kx] == p:
            owner[kx] = -1
    used[p] = False
    return m


@njit(cache=True)
def _find_runs(addr, length, write, core, task, flags, shift, cores, key, absorbed, o_start,
               o_count, o_kind, o_core, o_task, o_rs):  # pragma: no cover - compiled
    """Byte accesses -> line runs (see the module docstring). ``flags``: bit 0 lengths given,
    1 writes, 2 cores, 3 tasks (else 1 byte, loads, core 0, task 0). ``key`` 0 converts
    without finding runs. Returns the outputs written, -1 on a bad range, -2 on a bad core."""
    n = addr.shape[0]
    has_len = flags & 1
    has_wr = flags & 2
    has_core = flags & 4
    has_task = flags & 8
    kk = max(key, 1)
    owner = np.full(kk, -1, np.int64)
    p_start = np.zeros(_P, np.int64)
    p_end = np.zeros(_P, np.int64)
    p_kind = np.zeros(_P, np.int8)
    p_core = np.zeros(_P, np.int64)
    p_task = np.zeros(_P, np.int64)
    p_half = np.zeros(_P, np.bool_)
    used = np.zeros(_P, np.bool_)
    n_used = 0
    ring = 0
    fp = 0  # the run extended last
    m = 0
    i = -1
    while i + 1 < n:
        i += 1
        a = addr[i]
        ln = length[i] if has_len else 1
        if a < 0 or ln < 1:
            return -1
        c = core[i] if has_core else 0
        if c < 0 or c >= cores:
            return -2
        t = task[i] if has_task else 0
        k = 1 if has_wr and write[i] else 0
        f = a >> shift
        cnt = ((a + ln - 1) >> shift) + 1 - f
        if not key:
            m = _put(o_start, o_count, o_kind, o_core, o_task, o_rs, m, f, cnt, k, c, t)
            continue
        if cnt == 1:
            if (used[fp] and p_end[fp] == f and p_end[fp] - p_start[fp] >= kk
                    and p_kind[fp] == k and p_core[fp] == c and p_task[fp] == t):
                # the next line of a pending run that already owns every key, and the
                # lines that follow it in the same way
                e = f + 1
                while i + 1 < n:
                    a = addr[i + 1]
                    if a >> shift != e or (has_wr and (write[i + 1] != (k == 1))):
                        break
                    if has_len and (length[i + 1] < 1 or (a + length[i + 1] - 1) >> shift != e):
                        break
                    if (has_core and core[i + 1] != c) or (has_task and task[i + 1] != t):
                        break
                    e += 1
                    i += 1
                p_end[fp] = e
                continue
            kx = _key(f, kk)
            o = owner[kx]
            if o >= 0 and p_core[o] == c and p_end[o] - 1 == f:
                # an access to the most recent line of its set: a first-level hit
                pk = p_kind[o]
                if k == 0 or pk == 1 or (pk == 3 and not p_half[o]):
                    absorbed[t, k] += 1
                    continue
                if p_task[o] == t:
                    if pk == 3:  # the store completing the last line's read-modify-write
                        p_half[o] = False
                        continue
                    if p_end[o] - p_start[o] == 1:  # a one-line load becomes read-modify-write
                        p_kind[o] = 3
                        continue
                    # the load run gives up its last line to a read-modify-write run
                    p_end[o] -= 1
                    if p_end[o] - p_start[o] >= kk:
                        m = _flush(o, p_start, p_end, p_kind, p_core, p_task, p_half, used,
                                   owner, kk, o_start, o_count, o_kind, o_core, o_task, o_rs, m)
                        n_used -= 1
                    owner[kx] = -1
                    k = 3
            if k != 3:
                o = owner[_key(f - 1, kk)]
                if (o >= 0 and p_end[o] == f and p_core[o] == c and p_task[o] == t
                        and not p_half[o] and (p_kind[o] == k or (p_kind[o] == 3 and k == 0))):
                    p_end[o] += 1
                    p_half[o] = p_kind[o] == 3
                    fp = o
                    q = owner[kx]
                    if q >= 0 and q != o:
                        m = _flush(q, p_start, p_end, p_kind, p_core, p_task, p_half, used,
                                   owner, kk, o_start, o_count, o_kind, o_core, o_task, o_rs, m)
                        n_used -= 1
                    owner[kx] = o
                    continue
            q = owner[kx]
            if q >= 0:
                m = _flush(q, p_start, p_end, p_kind, p_core, p_task, p_half, used, owner, kk,
                           o_start, o_count, o_kind, o_core, o_task, o_rs, m)
                n_used -= 1
            while used[ring]:
                if n_used == _P:
                    m = _flush(ring, p_start, p_end, p_kind, p_core, p_task, p_half, used,
                               owner, kk, o_start, o_count, o_kind, o_core, o_task, o_rs, m)
                    n_used -= 1
                    break
                ring = (ring + 1) % _P
            p = ring
            ring = (ring + 1) % _P
            used[p] = True
            n_used += 1
            p_start[p] = f
            p_end[p] = f + 1
            p_kind[p] = k
            p_core[p] = c
            p_task[p] = t
            p_half[p] = False
            owner[kx] = p
            continue
        # an access of several lines: emitted at once, after the pending runs it meets
        if n_used:
            for x in range(f, f + min(cnt, kk)):
                q = owner[_key(x, kk)]
                if q >= 0:
                    m = _flush(q, p_start, p_end, p_kind, p_core, p_task, p_half, used, owner,
                               kk, o_start, o_count, o_kind, o_core, o_task, o_rs, m)
                    n_used -= 1
        m = _put(o_start, o_count, o_kind, o_core, o_task, o_rs, m, f, cnt, k, c, t)
    for p in range(_P):
        if used[p]:
            m = _flush(p, p_start, p_end, p_kind, p_core, p_task, p_half, used, owner, kk,
                       o_start, o_count, o_kind, o_core, o_task, o_rs, m)
    return m


@njit(cache=True)
def _check(addr, length, core, flags, shift, cores, windows, width,
           out):  # pragma: no cover - compiled
    """Validate ``windows`` windows of ``width`` accesses spread evenly over the stream (all
    of it if that covers it; returns -1 on a bad range, -2 on a bad core, else 0) and put in
    ``out`` the shares of them that cover several lines, and that are one line continuing
    the access before (its line or the next one, same core)."""
    n = addr.shape[0]
    has_len = flags & 1
    has_core = flags & 4
    multi = 0
    ext = 0
    seen = 0
    if windows * width >= n:
        windows, width = 1, n
    for k in range(windows):
        i0 = k * (n - width) // max(windows - 1, 1) if windows > 1 else 0
        prev = -2
        pc = -1
        for i in range(i0, i0 + width):
            a = addr[i]
            ln = length[i] if has_len else 1
            c = core[i] if has_core else 0
            if a < 0 or ln < 1:
                return -1
            if c < 0 or c >= cores:
                return -2
            f = a >> shift
            last = (a + ln - 1) >> shift
            if last > f:
                multi += 1
            elif c == pc and (f == prev or f == prev + 1):
                ext += 1
            prev = last
            pc = c
            seen += 1
    out[0] = multi / max(seen, 1)
    out[1] = ext / max(seen, 1)
    return 0


def columns(addresses, lengths, writes, cores, tasks):
    """The access columns as contiguous arrays (absent ones as a one-element stand-in) and
    the flags saying which are given."""
    addr = np.ascontiguousarray(addresses, dtype=np.int64).reshape(-1)
    n = addr.shape[0]
    flags = 0
    cols = []
    for bit, (arr, dt) in enumerate(((lengths, np.int64), (writes, np.bool_), (cores, np.int64),
                                     (tasks, np.int64))):
        if arr is None:
            cols.append(np.zeros(1, dt))
            continue
        arr = np.ascontiguousarray(arr, dtype=dt).reshape(-1)
        if arr.shape[0] != n:
            raise ValueError("lengths, writes, cores and tasks must match addresses")
        cols.append(arr)
        flags |= 1 << bit
    return addr, cols, flags


def run_shares(addr, cols, flags, line: int, n_cores: int, probe: int = 1 << 16
               ) -> tuple[float, float]:
    """The shares of ``probe`` accesses (16 windows spread over the stream) that cover
    several lines, and that are one line continuing the access before (see :func:`_check`);
    ``probe=-1``: of all of them. Raises ValueError naming the fault of a bad access among
    them."""
    windows, width = (1, addr.shape[0]) if probe < 0 else (16, max(probe // 16, 1))
    out = np.zeros(2)
    r = _check(addr, cols[0], cols[2], flags, line.bit_length() - 1, n_cores, windows, width,
               out)
    if r == -1:
        raise ValueError("addresses must be non-negative and lengths positive")
    if r == -2:
        raise ValueError(f"core ids must be within 0..{n_cores - 1}")
    return float(out[0]), float(out[1])


def find_runs(addresses, lengths, writes, cores, tasks, line: int, n_cores: int, key: int,
              n_tasks: int):
    """Line runs of a stream of byte accesses (``lengths``, ``writes``, ``cores``, ``tasks``
    arrays or None), exact for every hierarchy of ``n_cores`` cores whose set counts are all
    multiples of ``key`` (0: convert without finding runs). Returns the six request columns
    (``rs`` as int8: 1 first line, 2 every line) and ``absorbed`` (n_tasks, 2): per task, the
    loads and the stores that were first-level hits on the most recent line and were counted
    rather than replayed. Raises ValueError on a negative address, a length under 1 or a core
    id outside 0..n_cores-1."""
    addr, cols_in, flags = columns(addresses, lengths, writes, cores, tasks)
    return runs_of(addr, cols_in, flags, line, n_cores, key, n_tasks)


def runs_of(addr, cols_in, flags: int, line: int, n_cores: int, key: int, n_tasks: int):
    """:func:`find_runs` of accesses already made into :func:`columns`."""
    n = addr.shape[0]
    absorbed = np.zeros((n_tasks, 2), np.int64)
    cols = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int8),
            np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int8))
    m = _find_runs(addr, *cols_in, flags, line.bit_length() - 1, n_cores, int(key), absorbed,
                   *cols)
    if m == -1:
        raise ValueError("addresses must be non-negative and lengths positive")
    if m == -2:
        raise ValueError(f"core ids must be within 0..{n_cores - 1}")
    return tuple(c[:m] for c in cols), absorbed
