"""Human units are parsed at the edge into SI floats (hwmodels.units)."""
import pytest

from hwmodels.units import UnitError, parse_quantity


@pytest.mark.parametrize("text, dimension, expected", [
    ("32 KiB", "bytes", 32768),
    ("1 MiB", "bytes", 2**20),
    ("300 MiB", "bytes", 300 * 2**20),
    ("64 B", "bytes", 64),
    ("64B", "bytes", 64),
    ("1 kB", "bytes", 1000),
    ("512 bit", "bytes", 64),
    ("3.6 GHz", "hertz", 3.6e9),
    ("480 MHz", "hertz", 480e6),
    ("1.3 nJ", "joules", 1.3e-9),
    ("0.9 pJ", "joules", 0.9e-12),
    ("162.5 pJ", "joules", 162.5e-12),
    ("25.6 GB/s", "bytes_per_second", 25.6e9),
    ("200 MB/s", "bytes_per_second", 200e6),
    ("1 GiB/s", "bytes_per_second", 2**30),
    ("90 ns", "seconds", 90e-9),
    ("2 us", "seconds", 2e-6),
    ("0.5 W", "watts", 0.5),
    ("300 mW", "watts", 0.3),
    ("1e3 B", "bytes", 1000),
    (" 7 ", "bytes", 7),
])
def test_parses_human_units(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value", [64, 64.0, 3.7e9])
def test_plain_numbers_are_si(value):
    assert parse_quantity(value, "hertz") == float(value)


@pytest.mark.parametrize("value, dimension, match", [
    ("32 KiB", "hertz", "in bytes, expected hertz"),
    ("3.6 GHz", "bytes", "in hertz, expected bytes"),
    ("90 ns", "joules", "in seconds, expected joules"),
    ("0.9 pW", "joules", "in watts, expected joules"),
    ("3.6 GHZ", "hertz", "unknown unit"),
    ("12 parsecs", "seconds", "unknown unit"),
    ("32 XiB", "bytes", "unknown unit"),
    ("fast", "hertz", "cannot parse"),
    ("", "bytes", "cannot parse"),
    ("1.2.3 GHz", "hertz", "cannot parse"),
    (True, "bytes", "expected a quantity"),
    (None, "bytes", "expected a quantity"),
    ([64], "bytes", "expected a quantity"),
])
def test_bad_quantities_raise_unit_error(value, dimension, match):
    with pytest.raises(UnitError, match=match):
        parse_quantity(value, dimension)


def test_unit_error_is_a_value_error():
    assert issubclass(UnitError, ValueError)
