"""Config files: pydantic schemas validated once at the edge."""
from simsnn.config.loader import load_config, read_yaml, register_kind, validate
from simsnn.config.network import NetworkConfig

__all__ = ["load_config", "read_yaml", "register_kind", "validate", "NetworkConfig"]
