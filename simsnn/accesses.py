"""The memory accesses of each kernel of the measured program (simsnn.host.kernels), in the
order the kernel makes them, as the lowering hands them to the memory model: lists of parts
``(addresses, lengths, write flags)``, byte ranges in the program's layout (simsnn.layout).

Element-wise accesses (an event's index, its row in the input-to-row map, a spike's slot) are
ranges of one element; a loop over a whole array is one range. Kernels that write a slot
branch-free (the slot is written at every element, kept only when it counts: the encoder,
the window scan, the spike lists) touch the slots up to the last kept one plus one. Heap
temporaries of the kernels (a few lines per call) and the Python driver's own data are not
modelled.
"""
from __future__ import annotations

import numpy as np

from simsnn.workload_builder import expand


def rows(*cols: tuple) -> list[tuple]:
    """Parts from columns of per-item accesses, item by item: every column is (addresses,
    lengths, write) with addresses of shape (n,) or (n, k) (k accesses of item i in turn),
    and the accesses of item i are its columns' in order, before item i + 1's."""
    cols = [c for c in cols if np.size(c[0])]
    if not cols:
        return []
    n = np.shape(cols[0][0])[0]
    addr, ln, wr = [], [], []
    for a, length, w in cols:
        a = np.asarray(a, np.int64).reshape(n, -1)
        addr.append(a)
        ln.append(expand(np.asarray(length, np.int64).reshape(
            (n, -1) if np.ndim(length) else (1, 1)), a.shape))
        wr.append(expand(np.asarray(w, bool).reshape(
            (n, -1) if np.ndim(w) else (1, 1)), a.shape))
    return [(np.concatenate(addr, 1).ravel(), np.concatenate(ln, 1).ravel(),
             np.concatenate(wr, 1).ravel())]


def ordered(groups: list[tuple]) -> list[tuple]:
    """Parts from groups (item, rank, addresses, lengths, write) of flat arrays: every access
    sorted by its item, then its rank within the item (stable)."""
    groups = [g for g in groups if np.size(g[2])]
    if not groups:
        return []
    item = np.concatenate([expand(g[0], np.shape(g[2])) for g in groups])
    rank = np.concatenate([expand(g[1], np.shape(g[2])) for g in groups])
    addr = np.concatenate([np.asarray(g[2], np.int64) for g in groups])
    ln = np.concatenate([expand(g[3], np.shape(g[2]), np.int64) for g in groups])
    wr = np.concatenate([expand(g[4], np.shape(g[2]), np.bool_) for g in groups])
    o = np.lexsort((rank, item))
    return [(addr[o], ln[o], wr[o])]


def compacted(base: int, n: int, kept: int, item: int) -> int:
    """Bytes a branch-free compaction of ``n`` items writes at ``base``: slots 0 .. kept (the
    slot after the last kept item is written too, unless every item was kept)."""
    return item * min(kept + 1, n)


def encoder(inp: int, idx: int, val: int, n: int, kept: int) -> list[tuple]:
    """kernels.encode_input at one step: read the step's ``n`` input values, write the
    index and value lists of the ``kept`` non-zero ones (branch-free)."""
    b = compacted(idx, n, kept, 4)
    return [(np.array([inp]), np.array([4 * n]), False),
            (np.array([idx]), np.array([b]), True), (np.array([val]), np.array([b]), True)]


def event_heads(src: tuple, t: int, events: np.ndarray, rows_of: np.ndarray, in_perm: int,
                graded: bool) -> tuple:
    """Per input event of step ``t`` (``events``: their positions in the step's list), the
    accesses before its rows: its index, its value (graded inputs), its row in the
    input-to-row map (``rows_of``: the map's entry each event reads). ``src`` = (index list
    base, value list base, list length) of the incoming events. Columns for :func:`rows`."""
    idx_base, val_base, stride = src
    pos = t * stride + events
    cols = [(idx_base + 4 * pos, 4, False)]
    if graded:
        cols.append((val_base + 4 * pos, 4, False))
    cols.append((in_perm + 8 * rows_of, 8, False))
    return tuple(cols)


def spike_slots(spikes: int, count: int, core: int, t: int, steps: int, units: int,
                n_spikes: int, n_updates: int) -> list[tuple]:
    """A core's spike list at step ``t`` (the update writes a slot per unit, branch-free)
    and its count."""
    if n_updates == 0:
        return []
    base = spikes + 8 * ((core * steps + t) * units)
    return [(np.array([base]), np.array([8 * min(n_spikes + 1, n_updates)]), True),
            (np.array([count + 8 * (core * steps + t)]), np.array([8]), True)]


def merge(spikes: int, count: int, inv_perm: int, out: int, stride: int, steps: int,
          units: int, per_core: list[list[np.ndarray]]) -> list[tuple]:
    """kernels.merge_events after a layer: per step, per core, its count, then per spike its
    slot, its entry of the storage-to-unit map and its place in the step's sorted list.
    ``per_core[t][c]``: core c's spiking storage positions at step t, in list order."""
    parts: list[tuple] = []
    for t, lists in enumerate(per_core):
        m = 0
        for c, pos in enumerate(lists):
            parts.append((np.array([count + 8 * (c * steps + t)]), np.array([8]), False))
            k = pos.shape[0]
            if k == 0:
                continue
            slot = spikes + 8 * ((c * steps + t) * units + np.arange(k))
            dest = out + 4 * (t * stride + m + np.arange(k))
            parts += rows((slot, 8, False), (inv_perm + 8 * pos, 8, False), (dest, 4, True))
            m += k
    return parts


def conv_merge(spikes: int, count: int, inv_perm: int, first: int, out: int, stride: int,
               steps: int, units: int, n_out: int, n_pos: int,
               per_core: list[list[tuple[np.ndarray, np.ndarray]]],
               inv: np.ndarray) -> list[tuple]:
    """kernels.merge_conv_events after a convolution: per step, zero the channel counts,
    count (per spike: its slot, its channel's unit, the count), prefix-sum the counts, then
    place (per spike: slot, unit, count, its place in the sorted list). ``per_core[t][c]``:
    core c's spikes at step t as (storage channels, positions) in list order; ``inv``: the
    storage-to-unit map."""
    parts: list[tuple] = []
    counts = (np.array([first]), np.array([8 * (n_out + 1)]))
    for t, lists in enumerate(per_core):
        parts.append((counts[0], counts[1], True))
        slots, chans, units_, dests = [], [], [], []
        for c, (ch, p) in enumerate(lists):
            parts.append((np.array([count + 8 * (c * steps + t)]), np.array([8]), False))
            slots.append(spikes + 8 * ((c * steps + t) * units + np.arange(ch.shape[0])))
            chans.append(ch)
            units_.append(inv[ch] * n_pos + p)
        if not slots:
            continue
        slot, ch, unit = (np.concatenate(v) for v in (slots, chans, units_))
        if slot.size:
            rank = np.empty(unit.shape[0], np.int64)
            rank[np.argsort(unit, kind="stable")] = np.arange(unit.shape[0])
            cnt = first + 8 * (inv[ch] + 1)
            parts += rows((slot, 8, False), (inv_perm + 8 * ch, 8, False), (cnt, 8, False),
                          (cnt, 8, True))
        parts += [(counts[0], counts[1], False), (counts[0], counts[1], True)]
        if slot.size:
            dests.append(out + 4 * (t * stride + rank))
            cnt = first + 8 * inv[ch]
            parts += rows((slot, 8, False), (inv_perm + 8 * ch, 8, False), (cnt, 8, False),
                          (dests[-1], 4, True), (cnt, 8, True))
    return parts


def pool(src: tuple, t: int, n_events: int, windows: np.ndarray, pooled: int, n: int,
         out: tuple, kept: int) -> list[tuple]:
    """kernels.pool_layer at one step: zero the ``n`` window counts, per input spike its
    index and (``windows``: its window's entry, -1 outside) the count, then the branch-free
    scan writing the ``kept`` non-zero windows as index and value lists (``out`` = (index
    list base, value list base, list length))."""
    idx_base, _, stride = src
    parts = [(np.array([pooled]), np.array([4 * n]), True)]
    ev = idx_base + 4 * (t * stride + np.arange(n_events))
    inside = windows >= 0
    e_idx = np.arange(n_events)
    parts += ordered([(e_idx, 0, ev, 4, False),
                      (e_idx[inside], 1, pooled + 4 * windows[inside], 4, False),
                      (e_idx[inside], 2, pooled + 4 * windows[inside], 4, True)])
    b = compacted(0, n, kept, 4)
    parts += [(np.array([pooled]), np.array([4 * n]), False),
              (np.array([out[0] + 4 * t * out[2]]), np.array([b]), True),
              (np.array([out[1] + 4 * t * out[2]]), np.array([b]), True)]
    return parts


def rate_features(src: tuple, per_step: list[np.ndarray], graded: bool, feat: int,
                  n: int) -> list[tuple]:
    """kernels.rate_features: zero the ``n`` features, add every step's events (index,
    value, the feature), divide."""
    idx_base, val_base, stride = src
    parts = [(np.array([feat]), np.array([4 * n]), True)]
    for t, ev in enumerate(per_step):
        pos = t * stride + np.arange(ev.shape[0])
        cols = [(idx_base + 4 * pos, 4, False)]
        if graded:
            cols.append((val_base + 4 * pos, 4, False))
        cols += [(feat + 4 * ev, 4, False), (feat + 4 * ev, 4, True)]
        parts += rows(*cols)
    parts += [(np.array([feat]), np.array([4 * n]), False),
              (np.array([feat]), np.array([4 * n]), True)]
    return parts
