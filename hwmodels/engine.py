"""Discrete-event timing (simpy) at the granularity of tasks and transfer chunks.

Each task (one core's share of a phase) computes and moves data at the same time and then pays
the latency that prefetching cannot hide:

    duration = max(compute, transfers) + exposed latency

``transfers`` are the lines each level delivers to the one above at that level's bandwidth
(private levels: no contention; shared levels and DRAM: :class:`BandwidthChannel` resources
that serve chunks first come first served, so more cores queue for them), summed over levels as
in the ECM model, or with ``overlapped`` transfers the slowest level's time (all levels
streaming at once). ``exposed latency`` is the latency of the level that served the first line of
each sequential run, divided by the core's memory-level parallelism. Phases end with a barrier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy


class BandwidthChannel(simpy.Resource):
    """A contended transfer path (a DRAM channel, a shared cache's port)."""

    def __init__(self, env: simpy.Environment, name: str, bandwidth: float):
        super().__init__(env, capacity=1)
        self.sim = env
        self.name = name
        self.bandwidth = float(bandwidth)
        self.busy = 0.0
        self.bytes = 0.0

    def transfer(self, nbytes: float):
        """Process generator: move ``nbytes`` through the channel."""
        with self.request() as req:
            yield req
            dt = nbytes / self.bandwidth
            self.busy += dt
            self.bytes += nbytes
            yield self.sim.timeout(dt)


@dataclass
class TaskCosts:
    """Inputs of the timing model, one entry per task (seconds or bytes)."""

    compute: np.ndarray  # s
    private: np.ndarray  # s of uncontended on-chip transfers
    shared_bytes: np.ndarray  # (n_tasks, n_channels) bytes through each contended channel
    latency: np.ndarray  # s of exposed latency
    overlapped: bool = False  # levels transfer at once (max), not one after the other (sum)

    def transfer_time(self, bandwidths: np.ndarray) -> np.ndarray:
        """Seconds each task's transfers take without queueing, given each channel's
        bandwidth (bytes/s): the private transfers and every channel's bytes at its rate,
        one after the other or, ``overlapped``, the slowest of them."""
        per_channel = self.shared_bytes / bandwidths
        out = self.private.copy()
        for c in range(per_channel.shape[1]):
            out = np.maximum(out, per_channel[:, c]) if self.overlapped else \
                out + per_channel[:, c]
        return out


@dataclass
class Timeline:
    start: np.ndarray
    end: np.ndarray
    phase_end: np.ndarray
    channel_busy: dict[str, float]
    channel_bytes: dict[str, float]

    @property
    def total(self) -> float:
        return float(self.phase_end[-1]) if self.phase_end.size else 0.0


def run_timeline(task_phase: np.ndarray, n_phases: int, costs: TaskCosts,
                 channels: list[tuple[str, float]], chunk_bytes: float = 16384.0) -> Timeline:
    """Play the phases in order. Phases whose tasks share no channel are computed directly
    (the same equations without queueing); the others run in simpy."""
    n_tasks = task_phase.shape[0]
    start = np.zeros(n_tasks)
    end = np.zeros(n_tasks)
    phase_end = np.zeros(n_phases)
    env = simpy.Environment()
    chans = [BandwidthChannel(env, name, bw) for name, bw in channels]
    bounds = np.searchsorted(task_phase, np.arange(n_phases + 1))
    uses = costs.shared_bytes > 0
    bandwidths = np.array([bw for _, bw in channels])
    mem_all = costs.transfer_time(bandwidths)  # the unqueued equations' transfer time

    def task(i: int):
        start[i] = env.now
        compute = env.timeout(costs.compute[i])
        moves = env.process(transfers(i))
        yield compute & moves
        yield env.timeout(costs.latency[i])
        end[i] = env.now

    def channel(i: int, c: int):
        left = costs.shared_bytes[i, c]
        while left > 0:
            step = min(left, chunk_bytes)
            yield from chans[c].transfer(step)
            left -= step

    def transfers(i: int):
        if costs.overlapped:
            yield env.all_of([env.timeout(costs.private[i])] +
                             [env.process(channel(i, c)) for c in range(len(chans))])
            return
        yield env.timeout(costs.private[i])
        for c in range(len(chans)):
            yield from channel(i, c)

    def phases():
        for p in range(n_phases):
            a, b = bounds[p], bounds[p + 1]
            if b - a <= 1 or not np.any(uses[a:b].sum(axis=0) > 1):
                t0 = env.now
                dur = 0.0
                for i in range(a, b):
                    for c, ch in enumerate(chans):
                        nb = costs.shared_bytes[i, c]
                        ch.busy += nb / ch.bandwidth
                        ch.bytes += nb
                    d = max(costs.compute[i], mem_all[i]) + costs.latency[i]
                    start[i], end[i] = t0, t0 + d
                    dur = max(dur, d)
                yield env.timeout(dur)
            else:
                yield env.all_of([env.process(task(i)) for i in range(a, b)])
            phase_end[p] = env.now

    env.process(phases())
    env.run()
    return Timeline(start, end, phase_end, {c.name: c.busy for c in chans},
                    {c.name: c.bytes for c in chans})
