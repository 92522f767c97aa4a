import h5py
import numpy as np
import pytest

import simsnn
from simsnn.errors import TraceFormatError
from simsnn.trace import SpikeTrace, load_trace
from tests.conftest import make_cfg


@pytest.fixture
def trace(rng):
    net = simsnn.load_network(make_cfg("gated", gate={"groups": 2, "top_k": 1}))
    _, tr = simsnn.run_network(net, rng.random((20, 6)), labels=rng.integers(0, 3, 20),
                               record=True)
    return tr


def test_round_trip(tmp_path, trace):
    p = tmp_path / "t.h5"
    trace.save(p)
    back = load_trace(p)
    assert list(back.layers) == list(trace.layers)
    for k in trace.layers:
        np.testing.assert_array_equal(back.layers[k], trace.layers[k])
    np.testing.assert_array_equal(back.gate_groups, trace.gate_groups)
    np.testing.assert_array_equal(back.gate_classes, trace.gate_classes)
    np.testing.assert_array_equal(back.labels, trace.labels)
    np.testing.assert_array_equal(back.predictions, trace.predictions)
    assert back.meta == trace.meta and back.timesteps == trace.timesteps


def test_odd_unit_counts_round_trip(tmp_path, rng):
    tr = SpikeTrace("x", "dense", 3, {"input": rng.random((2, 3, 13)) < 0.5,
                                      "a": rng.random((2, 3, 1)) < 0.5})
    tr.save(tmp_path / "t.h5")
    back = load_trace(tmp_path / "t.h5")
    assert back.layers["input"].shape == (2, 3, 13)
    np.testing.assert_array_equal(back.layers["a"], tr.layers["a"])


def test_truncated_file(tmp_path, trace):
    p = tmp_path / "t.h5"
    trace.save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFormatError, match="t.h5"):
        load_trace(p)


def test_corrupted_dataset_fails_checksum(tmp_path, trace):
    p = tmp_path / "t.h5"
    trace.save(p)
    with h5py.File(p, "r+") as f:  # rewrite a dataset without updating the checksum
        ds = f["spikes/0001"]
        arr = ds[()]
        arr[0, 0, 0] ^= 0xFF
        ds[...] = arr
    with pytest.raises(TraceFormatError, match="checksum mismatch"):
        load_trace(p)


def test_garbage_and_foreign_files(tmp_path):
    p = tmp_path / "junk.h5"
    p.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(TraceFormatError, match="junk.h5"):
        load_trace(p)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(TraceFormatError, match="not a simsnn trace"):
        load_trace(tmp_path / "other.h5")
    with pytest.raises(TraceFormatError, match="not found"):
        load_trace(tmp_path / "missing.h5")


def test_unknown_version(tmp_path, trace):
    p = tmp_path / "t.h5"
    trace.save(p)
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = 99
    with pytest.raises(TraceFormatError, match="version 99"):
        load_trace(p)


def test_failed_save_keeps_existing_file(tmp_path, trace, monkeypatch):
    p = tmp_path / "t.h5"
    trace.save(p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError):
        trace.save(p)
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["t.h5"]
