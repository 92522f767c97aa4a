from pathlib import Path

from simsnn.config.docgen import schema_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_current():
    current = (ROOT / "docs" / "config-schema.md").read_text()
    assert current == schema_markdown(), "regenerate: python -m simsnn.config.docgen > " \
                                         "docs/config-schema.md"


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()[:12]
    text = "\n".join(lines)
    assert "simsnn run configs/quickstart.yaml" in text
    assert "pytest" in text
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = next(line for line in lines if "pytest" in line).strip().strip("`")
    assert test_cmd in ci
