"""simsnn: hardware simulator and cost model for dense, task-specialized and gated SNNs."""
from simsnn.errors import ConfigError, DatasetError, NetworkError, SimsnnError, TraceFormatError
from simsnn.footprint import footprint
from simsnn.inference import run_network
from simsnn.loading import load_network
from simsnn.simulate import SimResult, simulate
from simsnn.trace import SpikeTrace, load_trace

__version__ = "0.1.0"
__all__ = [
    "load_network", "run_network", "load_trace", "footprint", "SpikeTrace", "simulate",
    "SimResult",
    "SimsnnError", "ConfigError", "TraceFormatError", "DatasetError", "NetworkError",
]
