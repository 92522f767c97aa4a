"""``load_network``: one entry point for YAML configs, NIR files and shipped model names."""
from __future__ import annotations

from pathlib import Path

from simsnn.build import build_network
from simsnn.config.loader import load_config
from simsnn.config.network import NetworkConfig
from simsnn.errors import ConfigError
from simsnn.network import AnyNetwork

MODELS_DIR = Path(__file__).parent / "models"


def shipped_models() -> list[str]:
    """Names of the pretrained models inside the package."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def resolve(path_or_name: str | Path) -> Path:
    """A config path, or the YAML of a shipped model name."""
    p = Path(path_or_name)
    if p.exists():
        return p
    shipped = MODELS_DIR / f"{path_or_name}.yaml"
    if shipped.exists():
        return shipped
    names = ", ".join(shipped_models()) or "none"
    raise ConfigError(str(path_or_name), "", f"no such file or shipped model (shipped: {names})")


def load_network(path_or_name: str | Path | NetworkConfig, dt: float | None = None) -> AnyNetwork:
    """Load a network from a YAML config, a NIR file (needs ``dt``) or a shipped model name."""
    if isinstance(path_or_name, NetworkConfig):
        return build_network(path_or_name)
    path = resolve(path_or_name)
    if path.suffix.lower() in (".nir", ".h5", ".hdf5"):
        from simsnn.nir_io import import_nir
        return import_nir(path, dt=dt)
    cfg = load_config(path, expect="network")
    return build_network(cfg, source=str(path), base_dir=path.parent)  # type: ignore[arg-type]
