"""Example plug-in: the synapse SRAM of a neuromorphic core (Loihi/SpiNNaker-like).

Every weight and neuron state lives in on-core SRAM; there is no cache and no spill to DRAM: a
network whose working set does not fit is an error, not a slowdown. Accesses cost a fixed
latency and an energy per access. Registered under the ``type`` name ``neuro_sram``:

    # pyproject.toml of the package that ships it
    [project.entry-points."hwmodels.components"]
    neuro_sram = "neuro_sram:NeuroSRAM"

and used from a hardware file as ``memory: [{type: neuro_sram, name: SRAM, size: 4 MiB, ...}]``.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hwmodels.components import WRITEBACK, MemoryLevel, Requests
from hwmodels.errors import HardwareError
from hwmodels.spec import Bytes, Priced, PricedPower


class NeuroSRAMSpec(BaseModel):
    """YAML schema of the level (extra fields are errors, like every hwmodels spec)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["neuro_sram"]
    name: str
    size: Bytes = Field(gt=0, description="SRAM capacity, e.g. '4 MiB'.")
    latency: float = Field(1.0, ge=0, description="Access latency in core cycles.")
    bandwidth: float = Field(64.0, gt=0, description="Bytes per cycle to the core.")
    shared: bool = False
    read: Priced
    write: Priced
    leakage: PricedPower | None = None


class NeuroSRAM(MemoryLevel):
    """Everything hits; touching more distinct lines than fit is a HardwareError."""

    type_name = "neuro_sram"
    Spec = NeuroSRAMSpec

    def __init__(self, spec, cores: int = 1):
        super().__init__(spec, cores)
        self.touched = [np.zeros(0, np.int64) for _ in range(self.instances)]

    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        lines, idx = req.expand()
        inst = np.zeros(len(req), np.int64) if self.shared else req.core
        for k in np.unique(inst):
            sel = inst[idx] == k
            self.touched[k] = np.union1d(self.touched[k], lines[sel])
            if self.touched[k].shape[0] * req.line > self.spec.size:
                raise HardwareError(f"{self.name}: the workload touches "
                                    f"{self.touched[k].shape[0] * req.line} B, more than the "
                                    f"{int(self.spec.size)} B of synapse SRAM")
        demand = req.kind[idx] != WRITEBACK
        self.counters[0] += int((req.kind[idx] == 0).sum())
        self.counters[1] += int((req.kind[idx] == 1).sum())
        self.counters[2] += int(demand.sum())
        np.add.at(tstats[:, 0], req.task[idx][demand], 1)
        empty = np.zeros(0, np.int64)
        return Requests(empty, empty, np.zeros(0, np.int8), empty, empty,
                        np.zeros(0, np.bool_), req.line)
