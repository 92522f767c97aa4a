"""Generate docs/config-schema.md from the pydantic models, so the reference never drifts.

Run ``python -m simsnn.config.docgen > docs/config-schema.md``; a test checks it is current.
"""
from __future__ import annotations

from hwmodels.docgen import model_markdown  # shared with docs/hardware-schema.md


def schema_markdown() -> str:
    from simsnn.config.experiment import ExperimentConfig
    from simsnn.config.network import NetworkConfig
    from simsnn.config.sweep import SweepConfig
    from simsnn.config.validation import ValidationConfig

    out = ["# Config file reference", "",
           "Generated from the pydantic models by `python -m simsnn.config.docgen`; do not edit.",
           "Every file has `version` (the format version, now 1) and `kind`. Unknown fields are "
           "errors. `simsnn check FILE` validates any of them.", ""]
    seen: set = set()
    for title, model in (("kind: network", NetworkConfig),
                         ("kind: experiment", ExperimentConfig),
                         ("kind: validation", ValidationConfig),
                         ("kind: sweep", SweepConfig)):
        out += [f"## {title}", ""] + model_markdown(model, seen)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown(), end="")
