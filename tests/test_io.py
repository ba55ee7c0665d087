"""numbanet.save / numbanet.load: exact round trips, atomic writes, and refusing damaged files.

Also: stale temporary files, permissions, errors that name the user's path, and crafted or impossible
files refused before anything large is allocated.
"""

import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import numbanet
from numbanet import ModelFileError
from numbanet.config import MAX_PARAMS, STALE_AFTER
from numbanet.io import FORMAT_VERSION


def _fitted_net(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 5))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    net = numbanet.Network(
        [5, 7, 6, 3],
        activations=["tanh", "relu", "softmax"],
        loss="cross_entropy",
        dtype=dtype,
        seed=seed,
        l2=1e-3,
        dropout=0.1,
    )
    net.fit(X, Y, epochs=3, batch_size=8, optimizer=numbanet.SGD(lr=0.05, momentum=0.9), progress=False)
    return net, X, Y


def _files(folder):
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------ Network


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_round_trip_is_exact(tmp_path, dtype):
    net, X, Y = _fitted_net(dtype)
    path = tmp_path / "net.npz"
    assert numbanet.save(net, path) == str(path)
    loaded = numbanet.load(path)
    assert isinstance(loaded, numbanet.Network)
    assert loaded.sizes == net.sizes and loaded.activations == net.activations and loaded.loss_name == net.loss_name
    assert loaded.dtype == net.dtype == np.dtype(dtype)
    assert loaded.l2 == net.l2 and loaded.dropout == net.dropout
    assert loaded.epochs_trained == net.epochs_trained == 3
    assert loaded.params.dtype == net.params.dtype
    np.testing.assert_array_equal(loaded.params, net.params)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))  # bit for bit
    assert loaded.loss(X, Y) == net.loss(X, Y)
    assert all(np.shares_memory(W, loaded.params) for W in loaded.weights)


def test_file_layout_is_plain_typed_arrays(tmp_path):
    net, _, _ = _fitted_net(np.float32)
    numbanet.save(net, tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert str(arrays["format"]) == "numbanet"
    assert arrays["format_version"].dtype.kind == "i" and int(arrays["format_version"]) == FORMAT_VERSION == 1
    assert str(arrays["kind"]) == "Network"
    assert arrays["sizes"].tolist() == [5, 7, 6, 3]
    assert arrays["activations"].tolist() == ["tanh", "relu", "softmax"]
    assert str(arrays["loss"]) == "cross_entropy" and str(arrays["dtype"]) == "float32"
    assert arrays["params"].dtype == np.float32 and arrays["params"].shape == (net.n_params,)
    assert all(a.dtype.kind != "O" for a in arrays.values())


def test_loaded_network_continues_training(tmp_path):
    net, X, Y = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "net.npz")
    loaded = numbanet.load(tmp_path / "net.npz")
    before = loaded.loss(X, Y)
    history = loaded.fit(X, Y, epochs=30, batch_size=8, optimizer=numbanet.SGD(lr=0.05), progress=False)
    assert loaded.loss(X, Y) < before
    assert history.epoch[0] == 3  # epoch numbering continues
    assert loaded.epochs_trained == 33


def test_save_writes_the_exact_path_and_overwrites(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, str(tmp_path / "model"))  # no suffix is added
    assert _files(tmp_path) == ["model"]
    other, _, _ = _fitted_net(np.float64, seed=1)
    numbanet.save(other, tmp_path / "model")
    assert _files(tmp_path) == ["model"]
    np.testing.assert_array_equal(numbanet.load(tmp_path / "model").params, other.params)


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="numbanet.Network, MLPClassifier or MLPRegressor"):
        numbanet.save({"not": "a model"}, tmp_path / "x.npz")
    assert _files(tmp_path) == []


# ------------------------------------------------------------ atomic writes


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_failed_save_leaves_no_partial_file_and_the_old_file_intact(tmp_path, monkeypatch, where):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    old_bytes = path.read_bytes()
    other, _, _ = _fitted_net(np.float64, seed=1)

    def boom(*args, **kwargs):
        if where == "savez":  # fail half way through writing
            args[0].write(b"PK\x03\x04 partial")
        raise OSError(f"simulated failure in {where}")

    target = {
        "savez": (numbanet.io.np, "savez"),
        "fsync": (numbanet.io.os, "fsync"),
        "replace": (numbanet.io.os, "replace"),
    }[where]
    monkeypatch.setattr(*target, boom)
    with pytest.raises(OSError, match="simulated failure"):
        numbanet.save(other, path)
    monkeypatch.undo()
    assert _files(tmp_path) == ["net.npz"]  # no temporary file left behind
    assert path.read_bytes() == old_bytes
    np.testing.assert_array_equal(numbanet.load(path).params, net.params)


def test_failed_first_save_creates_nothing(tmp_path, monkeypatch):
    net, _, _ = _fitted_net(np.float64)

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(numbanet.io.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        numbanet.save(net, tmp_path / "net.npz")
    assert _files(tmp_path) == []


# ------------------------------------------------- stale temporary files

_HEX = "0123456789abcdef" * 2

# A save that stops while it writes its temporary file (fsync is called with the file complete, open and
# locked), after telling the test so by creating the file named by argv[2].
_HUNG_SAVE = """
import os, sys, time
import numbanet

def hang(fd):
    open(sys.argv[2], "w").close()
    time.sleep(600)

numbanet.io.os.fsync = hang
numbanet.save(numbanet.Network([5, 7, 3], seed=0), sys.argv[1])
"""


def _start_hung_save(path, ready):
    root = os.path.dirname(os.path.dirname(numbanet.__file__))  # the numbanet under test
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    child = subprocess.Popen([sys.executable, "-c", _HUNG_SAVE, str(path), str(ready)], env=env)
    deadline = time.monotonic() + 600  # only so that a broken child cannot hang the test run
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"the child save never reached fsync (exit status {child.returncode})")
        time.sleep(0.05)
    return child


def _temps(folder):
    return [folder / name for name in _files(folder) if name.endswith(".tmp")]


def _age(path, seconds=STALE_AFTER + 3600):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.mark.slow  # a child Python, killed
@pytest.mark.skipif(os.name != "posix", reason="kill -9 and flock are POSIX")
def test_next_save_removes_the_temporary_file_of_a_killed_save(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "net.npz"
    numbanet.save(net, path)
    child = _start_hung_save(path, tmp_path / "ready")
    try:
        (temp,) = _temps(folder)
        assert temp.name.startswith(".net.npz.") and len(temp.name) == len(".net.npz..tmp") + 32
        _age(temp)  # even an old-looking temporary file is kept while its save holds the lock
        numbanet.save(net, path)
        assert temp.exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert temp.exists()  # the killed save left it behind
    os.utime(temp)  # killed just now: a file changed within STALE_AFTER seconds is kept
    numbanet.save(net, path)
    assert temp.exists()
    _age(temp)
    other, _, _ = _fitted_net(np.float64, seed=1)
    numbanet.save(other, path)
    assert _files(folder) == ["net.npz"]
    np.testing.assert_array_equal(numbanet.load(path).params, other.params)


def test_save_removes_only_its_own_stale_temporary_files(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    keep = [
        f".other.npz.{_HEX}.tmp",  # a stale temporary file, but of a save to another path
        ".net.npz.tmp",
        "net.npz.bak",
        f"net.npz.{_HEX}.tmp",
        f"x.net.npz.{_HEX}.tmp",
        f".net.npz.{_HEX[:31]}.tmp",
        f".net.npz.{_HEX}0.tmp",
        f".net.npz.{_HEX.upper()}.tmp",
        f".net.npz.{_HEX}.tmp.keep",
        f".net.npz.{_HEX}.tmp~",
        f"..net.npz.{_HEX}.tmp",
    ]
    for name in keep:
        (tmp_path / name).write_bytes(b"user data")
        _age(tmp_path / name)
    folder = tmp_path / f".net.npz.{'a' * 32}.tmp"  # right name, but a folder
    folder.mkdir()
    _age(folder)
    link = tmp_path / f".net.npz.{'b' * 32}.tmp"  # right name, but a link to a user's file
    (tmp_path / "precious.txt").write_bytes(b"precious")
    link.symlink_to(tmp_path / "precious.txt")
    _age(link)
    stale = tmp_path / f".net.npz.{'c' * 32}.tmp"
    stale.write_bytes(b"PK\x03\x04 the start of a model")
    _age(stale)
    numbanet.save(net, tmp_path / "net.npz")
    assert not stale.exists()  # the one stale temporary file of net.npz
    assert _files(tmp_path) == sorted(keep + [folder.name, link.name, "precious.txt", "net.npz"])
    assert all((tmp_path / name).read_bytes() == b"user data" for name in keep)
    assert (tmp_path / "precious.txt").read_bytes() == b"precious" and link.is_symlink()


# ------------------------------------------------------------- permissions


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o664, 0o666], ids=oct)
def test_saving_over_a_file_keeps_its_permission_bits(tmp_path, umask_022, mode):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a new file: 0o666 less the umask
    path.chmod(mode)
    other, _, _ = _fitted_net(np.float64, seed=1)
    numbanet.save(other, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    np.testing.assert_array_equal(numbanet.load(path).params, other.params)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o444, 0o400, 0o464, 0o000], ids=oct)
def test_saving_over_a_read_only_file_is_refused(tmp_path, mode):
    # Tests may run as root, who can write any file: a file without its owner's write bit is refused anyway.
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    old_bytes = path.read_bytes()
    path.chmod(mode)
    other, _, _ = _fitted_net(np.float64, seed=1)
    with pytest.raises(PermissionError) as info:
        numbanet.save(other, path)
    assert info.value.filename == str(path) and str(path) in str(info.value)
    assert "read-only" in str(info.value) and f"{mode:#o}" in str(info.value)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert _files(tmp_path) == ["net.npz"]
    path.chmod(0o600)
    assert path.read_bytes() == old_bytes


# ---------------------------------------------------- errors name the path


def _assert_names(error, path):
    assert error.filename == str(path) and error.filename2 is None
    assert str(path) in str(error) and ".tmp" not in str(error)


@pytest.mark.parametrize("where", ["missing folder", "file as folder", "folder as file"])
def test_save_errors_name_the_users_path(tmp_path, where):
    net, _, _ = _fitted_net(np.float64)
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    path, kind = {
        "missing folder": (tmp_path / "missing" / "net.npz", FileNotFoundError),
        "file as folder": (tmp_path / "file.txt" / "net.npz", NotADirectoryError),
        "folder as file": (tmp_path / "folder", IsADirectoryError),
    }[where]
    with pytest.raises(kind) as info:
        numbanet.save(net, path)
    _assert_names(info.value, path)
    assert _files(tmp_path) == ["file.txt", "folder"] and _files(tmp_path / "folder") == []


def test_save_into_a_read_only_folder_names_the_users_path(tmp_path, monkeypatch):
    net, _, _ = _fitted_net(np.float64)
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.name != "posix" or os.geteuid() == 0:
        # root (or Windows) can create files there anyway: fail the creation as the kernel would for a user
        real_open = os.open

        def os_open(file, flags, *args, **kwargs):
            if os.path.dirname(os.fspath(file)) == str(folder) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(numbanet.io.os, "open", os_open)
    try:
        with pytest.raises(PermissionError) as info:
            numbanet.save(net, folder / "net.npz")
    finally:
        monkeypatch.undo()
        folder.chmod(0o755)
    _assert_names(info.value, folder / "net.npz")
    assert _files(folder) == []


def test_bytes_paths_are_accepted(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    assert numbanet.save(net, os.fsencode(path)) == str(path)
    np.testing.assert_array_equal(numbanet.load(os.fsencode(path)).params, net.params)
    _assert_refused(os.fsencode(tmp_path / "nothing.npz"), str(tmp_path / "nothing.npz"), "no such file")
    with pytest.raises(FileNotFoundError) as info:
        numbanet.save(net, os.fsencode(tmp_path / "missing" / "net.npz"))
    _assert_names(info.value, tmp_path / "missing" / "net.npz")


# ------------------------------------------------------------ damaged files


def _assert_refused(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        numbanet.load(path)
    message = str(info.value)
    assert os.fsdecode(path) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    _assert_refused(tmp_path / "nothing.npz", "no such file")


def test_folder_instead_of_file(tmp_path):
    _assert_refused(tmp_path, "is a folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _assert_refused(path, "empty")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    net, _, _ = _fitted_net(np.float64)
    good = tmp_path / "good.npz"
    numbanet.save(net, good)
    data = good.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    _assert_refused(path, "damaged or truncated")


def test_corrupted_bytes_are_refused_or_harmless(tmp_path):
    # Flip every 7th byte of a small model file in turn (the sweep over every byte passes too, in 9 s;
    # this keeps the test quick and still hits every header and member): either load() refuses it with a
    # ModelFileError, or the byte was one zip ignores (a local header's timestamp, ...) and the
    # model comes back exactly.  Never a different model, never another exception.
    net = numbanet.Network([3, 4, 2], activations=["relu", "sigmoid"], loss="binary_cross_entropy", seed=0)
    good = tmp_path / "good.npz"
    numbanet.save(net, good)
    data = good.read_bytes()
    path = tmp_path / "bad.npz"
    refused = 0
    for pos in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            loaded = numbanet.load(path)
        except ModelFileError as e:
            assert str(path) in str(e)
            refused += 1
            continue
        assert isinstance(loaded, numbanet.Network)
        assert (loaded.sizes, loaded.activations, loaded.loss_name) == (net.sizes, net.activations, net.loss_name)
        assert loaded.dtype == net.dtype and loaded.l2 == net.l2 and loaded.epochs_trained == net.epochs_trained
        np.testing.assert_array_equal(loaded.params, net.params)
    assert refused > 0.5 * len(range(0, len(data), 7))


def test_corrupted_parameter_bytes(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    data = bytearray(path.read_bytes())
    start = data.index(net.params[:4].tobytes())  # the raw parameter values inside the archive
    data[start + 3] ^= 0x01
    path.write_bytes(bytes(data))
    _assert_refused(path, "damaged", "CRC")


def test_foreign_npz_without_format_key(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(1))
    _assert_refused(path, "not a numbanet model file", "'format'")


def test_other_format_name(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, format=np.array("keras"), format_version=np.array(1))
    _assert_refused(path, "not a numbanet model file", "keras")


def test_object_array_file_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, format=np.array("numbanet"), format_version=np.array(1), kind=np.array(["Network"], dtype=object))
    _assert_refused(path, "object arrays")


def test_plain_npy_and_text_files_are_refused(tmp_path):
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    _assert_refused(npy, "not a numbanet model file")
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a model\n")
    _assert_refused(text, "not a numbanet model file")


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def test_newer_format_version_is_refused_with_a_clear_message(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "future.npz"
    numbanet.save(net, path)
    _rewrite(path, format_version=np.array(2))
    _assert_refused(path, "written by a newer numbanet (format version 2); this numbanet reads version 1")


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(params=None), "missing params"),
        (dict(params=np.zeros(5)), "params has shape (5,)"),
        (dict(params=np.zeros(100, dtype=np.float32)), "params has shape"),
        (dict(activations=np.array(["relu", "swish", "softmax"])), "invalid architecture"),
        (dict(sizes=np.array([5.0, 7.0, 6.0, 3.0])), "wrong type"),
        (dict(loss=np.array(3)), "'loss' should be a text scalar"),
        (dict(kind=np.array("Transformer")), "unknown model kind"),
        (dict(format_version=np.array("1")), "'format_version' should be an integer"),
        (dict(format_version=np.array(0)), "format version 0"),
    ],
)
def test_inconsistent_contents_are_refused(tmp_path, changes, fragment):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _rewrite(path, **changes)
    _assert_refused(path, "damaged", fragment)


# ------------------------------------------- sizes checked before allocating


def _peak_bytes(call):
    """Most memory (Python and NumPy allocations, as tracemalloc sees them) in use above the start during ``call()``."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()


def _refused_load_peak(path, *fragments):
    peak = _peak_bytes(lambda: _assert_refused(path, *fragments))
    assert peak < 100 * 2**20, f"the refused load allocated {peak / 2**20:.0f} MiB"


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _npy(array_or_header, data=b""):
    buf = io.BytesIO()
    if isinstance(array_or_header, dict):
        np.lib.format.write_array_header_1_0(buf, array_or_header)
        buf.write(data)
    else:
        np.save(buf, array_or_header)
    return buf.getvalue()


def _write_npz(path, arrays, **raw_entries):
    """Write ``arrays`` as an .npz whose entries named in ``raw_entries`` hold the given bytes instead."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            zf.writestr(key + ".npy", raw_entries.pop(key) if key in raw_entries else _npy(value))
        for key, raw in raw_entries.items():
            zf.writestr(key + ".npy", raw)


def test_load_checks_the_parameter_count_before_building_the_network(tmp_path):
    # Before, load built Network([5, 6000, 6000, 3]) -- 36 million parameters, ~580 MB with its
    # initialisation -- and only then found params short.  (Kept modest so that a regression cannot
    # take gigabytes from a shared machine; the check is the same for [20000, 20000].)
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _rewrite(path, sizes=np.array([5, 6000, 6000, 3]))
    declared = 5 * 6000 + 6000 + 6000 * 6000 + 6000 + 6000 * 3 + 3
    _refused_load_peak(path, "damaged", f"params has shape ({net.n_params},)", f"needs ({declared},) of float64")


@pytest.mark.parametrize(
    "sizes, fragment",
    [
        ([5, 2**21, 2**21, 3], f"more than the {MAX_PARAMS} numbanet loads"),
        ([5, 2**62, 2**62, 3], f"more than the {MAX_PARAMS} numbanet loads"),
        ([5, -7, 6, 3], "sizes is [5, -7, 6, 3]; it must be at least 2 layer widths, each >= 1"),
        ([5, 0, 6, 3], "it must be at least 2 layer widths, each >= 1"),
        ([5], "it must be at least 2 layer widths, each >= 1"),
        (np.array([5, 2**63, 2**63, 3], dtype=np.uint64), f"more than the {MAX_PARAMS} numbanet loads"),
    ],
)
def test_load_refuses_absurd_sizes_before_allocating(tmp_path, sizes, fragment):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _rewrite(path, sizes=np.asarray(sizes))
    _refused_load_peak(path, fragment)


def test_entry_declaring_a_huge_shape_is_refused_before_reading(tmp_path):
    # np.load allocates what an .npy header declares (here 8 GB) before it finds the data short.
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "good.npz")
    arrays = _arrays(tmp_path / "good.npz")
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
    path = tmp_path / "crafted.npz"
    _write_npz(path, arrays, params=_npy(header, arrays["params"].tobytes()))
    assert path.stat().st_size < 10_000
    _refused_load_peak(
        path, "damaged or truncated", "entry 'params' declares shape (1000000000,)", f"holds {net.n_params * 8} bytes"
    )


def test_entry_claiming_more_bytes_than_the_file_holds_is_refused_before_reading(tmp_path):
    # A consistent lie: the .npy header declares 4 GB and so does the zip directory's size of the entry.
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "good.npz")
    arrays = _arrays(tmp_path / "good.npz")
    raw = _npy({"descr": "<f8", "fortran_order": False, "shape": (5 * 10**8,)}, arrays["params"].tobytes())
    path = tmp_path / "crafted.npz"
    _write_npz(path, arrays, params=raw)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the central directory: its entry for params.npy
    while data[entry + 46 : entry + 46 + len("params.npy")] != b"params.npy":
        entry = data.index(b"PK\x01\x02", entry + 4)
    header_len = len(raw) - len(arrays["params"].tobytes())
    data[entry + 24 : entry + 28] = (header_len + 5 * 10**8 * 8).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("params.npy").file_size == header_len + 4 * 10**9
    _refused_load_peak(path, "damaged", "entry 'params' claims", "more than a file of")


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"hello, not an array", "entry 'format' is not an .npy array"),
        (b"", "entry 'format' is not an .npy array"),
        (_npy(np.array("numbanet"))[:12], "reading array header"),
        (_npy(np.array("numbanet"))[:-4], "entry 'format' declares shape ()"),
    ],
)
def test_entries_that_are_not_whole_npy_arrays_are_refused(tmp_path, raw, fragment):
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "good.npz")
    path = tmp_path / "crafted.npz"
    _write_npz(path, _arrays(tmp_path / "good.npz"), format=raw)
    _assert_refused(path, "damaged", fragment)


# ------------------------------------------------------ impossible values


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused(tmp_path, value):
    net, _, _ = _fitted_net(np.float32)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    params = net.params.copy()
    params[7] = value
    _rewrite(path, params=params)
    _assert_refused(path, "damaged", "params holds 1 NaN or infinite values")


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(epochs_trained=np.array(-1, dtype=np.int64)), "epochs_trained is -1; it must be >= 0"),
        (dict(l2=np.array(-1e-3)), "l2 is -0.001; it must be a finite number >= 0"),
        (dict(l2=np.array(np.nan)), "l2 is nan"),
        (dict(l2=np.array(np.inf)), "l2 is inf"),
        (dict(dropout=np.array(1.0)), "dropout is 1.0; it must be in [0, 1)"),
        (dict(dropout=np.array(-0.1)), "dropout is -0.1"),
        (dict(dropout=np.array(np.nan)), "dropout is nan"),
    ],
)
def test_impossible_hyperparameters_are_refused(tmp_path, changes, fragment):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _rewrite(path, **changes)
    _assert_refused(path, "damaged", fragment)


# -------------------------------------------------------------- estimators
# (these need scikit-learn; the Network tests above run without it)


@pytest.fixture(scope="module")
def data():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def _fit(est, X, y):
    with warnings.catch_warnings():
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _estimators(X, y):
    from numbanet import MLPClassifier, MLPRegressor

    kw = dict(hidden_layer_sizes=(6, 5), max_iter=20, learning_rate_init=0.01, random_state=0)
    names = np.array(["low", "mid", "high"])
    multilabel = np.column_stack([y == 0, y == 2, X[:, 3] > 0]).astype(int)
    return {
        "multiclass-int": (MLPClassifier(**kw), y),
        "binary-int64": (MLPClassifier(**kw), (y > 0).astype(np.int64) * 7 - 3),
        "strings": (MLPClassifier(**kw), names[y]),
        "multilabel": (MLPClassifier(**kw), multilabel),
        "float32-sgd": (MLPClassifier(solver="sgd", dtype="float32", **kw), y),
        "early-stopping": (MLPClassifier(early_stopping=True, **kw), y),
        "regressor-1d": (MLPRegressor(activations=["tanh", "logistic"], **kw), X @ [1.0, -2.0, 0.5, 0.0]),
        "regressor-2d": (MLPRegressor(dtype=np.float32, **kw), X[:, :2] ** 2),
    }


@pytest.mark.parametrize(
    "case",
    [
        "multiclass-int",
        "binary-int64",
        "strings",
        "multilabel",
        "float32-sgd",
        "early-stopping",
        "regressor-1d",
        "regressor-2d",
    ],
)
def test_estimator_round_trip_is_exact(tmp_path, data, case):
    X, y = data
    est, target = _estimators(X, y)[case]
    _fit(est, X, target)
    path = tmp_path / "est.npz"
    numbanet.save(est, path)
    loaded = numbanet.load(path)
    assert type(loaded) is type(est)
    params, loaded_params = est.get_params(), loaded.get_params()
    if not isinstance(params["dtype"], (str, type(None))):
        assert loaded_params.pop("dtype") == np.dtype(params.pop("dtype")).name
    assert loaded_params == params
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        assert loaded.classes_.dtype.kind == est.classes_.dtype.kind or est.classes_.dtype.kind == "O"
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.score(X, target) == est.score(X, target)
    for attr in (
        "n_features_in_",
        "n_outputs_",
        "out_activation_",
        "loss_",
        "loss_curve_",
        "best_loss_",
        "validation_scores_",
        "best_validation_score_",
        "n_iter_",
        "t_",
    ):
        assert getattr(loaded, attr) == getattr(est, attr), attr
    assert loaded.net_.dtype == est.net_.dtype and loaded.net_.l2 == est.net_.l2
    # and it can continue training (with a fresh optimizer)
    if case != "early-stopping":
        loaded.partial_fit(X, target)
        assert len(loaded.loss_curve_) == len(est.loss_curve_) + 1


def test_estimator_file_holds_params_as_json_and_typed_classes(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["strings"]
    _fit(est, X, target)
    numbanet.save(est, tmp_path / "clf.npz")
    with np.load(tmp_path / "clf.npz", allow_pickle=False) as f:
        assert str(f["kind"]) == "MLPClassifier"
        params = f["estimator_params"]
        assert params.shape == () and params.dtype.kind == "U"
        assert json.loads(str(params))["hidden_layer_sizes"] == [6, 5]
        assert f["classes_"].dtype.kind == "U" and f["classes_"].tolist() == ["high", "low", "mid"]
        assert f["loss_curve_"].dtype == np.float64


def test_unfitted_estimator_is_not_saved(tmp_path):
    pytest.importorskip("sklearn")
    from numbanet import MLPRegressor

    with pytest.raises(ValueError, match="not fitted"):
        numbanet.save(MLPRegressor(), tmp_path / "reg.npz")
    assert _files(tmp_path) == []


def test_damaged_estimator_metadata_is_refused(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["multiclass-int"]
    _fit(est, X, target)
    path = tmp_path / "clf.npz"
    numbanet.save(est, path)
    _rewrite(path, estimator_params=np.array("{not json"))
    _assert_refused(path, "unreadable JSON")
    numbanet.save(est, path)
    _rewrite(path, classes_=None)
    _assert_refused(path, "missing classes_")


@pytest.mark.parametrize("key, value", [("n_iter_", -1), ("t_", -5), ("n_iter_", 2.5), ("t_", "120")])
def test_impossible_estimator_counters_are_refused(tmp_path, data, key, value):
    X, y = data
    est, target = _estimators(X, y)["multiclass-int"]
    _fit(est, X, target)
    path = tmp_path / "clf.npz"
    numbanet.save(est, path)
    fitted = json.loads(str(_arrays(path)["fitted"]))
    assert isinstance(fitted[key], int)
    fitted[key] = value
    _rewrite(path, fitted=np.array(json.dumps(fitted)))
    _assert_refused(path, "damaged", f"{key} is {value!r}; it must be an integer >= 0")


def test_network_unpickled_from_a_read_only_memory_map_can_train(tmp_path):
    # joblib (GridSearchCV, Parallel) may unpickle large arrays as read-only memory maps.
    joblib = pytest.importorskip("joblib")
    net, X, Y = _fitted_net(np.float64)
    joblib.dump(net, tmp_path / "net.joblib")
    copy = joblib.load(tmp_path / "net.joblib", mmap_mode="r")
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    copy.fit(X, Y, epochs=2, progress=False)  # continues with the unpickled SGD momentum state
    net.fit(X, Y, epochs=2, progress=False)
    np.testing.assert_array_equal(copy.params, net.params)


# ------------------------------- crafted files: memory bounded by the model, limits, consistency


def _zeros_model(path, n_hidden):
    """Write a Network of [1, n_hidden, 1] with zero parameters, deflated (a small file); return the model's bytes."""
    net = numbanet.Network([1, 2, 1], seed=0)
    numbanet.save(net, path)
    arrays = _arrays(path)
    n_params = 3 * n_hidden + 1
    arrays.update(sizes=np.array([1, n_hidden, 1]), params=np.zeros(n_params))
    np.savez_compressed(path, **arrays)
    return n_params * 8


def test_loading_a_highly_compressed_model_takes_about_its_own_size(tmp_path):
    # Before, a 0.1 MiB file of a 96 MiB model peaked at 224 MiB (the array read, then copied into a
    # network whose initialisation drew each layer's weights into a temporary of the layer's size).
    path = tmp_path / "zeros.npz"
    model_bytes = _zeros_model(path, 2**20)
    assert path.stat().st_size < model_bytes / 100
    loaded = []
    peak = _peak_bytes(lambda: loaded.append(numbanet.load(path)))
    assert loaded[0].n_params * 8 == model_bytes and not loaded[0].params.any()
    assert peak < model_bytes + 4 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {model_bytes / 2**20:.1f} MiB model"


def test_max_params_refuses_a_larger_model_before_inflating_it(tmp_path):
    path = tmp_path / "zeros.npz"
    _zeros_model(path, 2**20)
    peak = _peak_bytes(lambda: _assert_refused_with(path, dict(max_params=10**6), "max_params"))
    assert peak < 2**20
    assert numbanet.load(path, max_params=3 * 2**20 + 1).n_params == 3 * 2**20 + 1
    for bad in (0, -3, 2.5, "many"):
        with pytest.raises(ValueError, match="max_params must be a positive integer"):
            numbanet.load(path, max_params=bad)


def _assert_refused_with(path, kwargs, *fragments):
    with pytest.raises(ModelFileError) as info:
        numbanet.load(path, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_max_params_also_bounds_the_declared_sizes(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _assert_refused_with(path, dict(max_params=net.n_params - 1), f"declare {net.n_params} parameters", "max_params")
    assert numbanet.load(path, max_params=net.n_params).n_params == net.n_params


@pytest.mark.parametrize("n_entries", [1, 16])
def test_entries_the_format_lacks_are_refused_without_inflating_them(tmp_path, n_entries):
    # Before, each unused entry was inflated: 16 entries of 8 MiB of zeros in a 0.25 MiB file peaked at 257 MiB.
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "good.npz")
    arrays = _arrays(tmp_path / "good.npz")
    path = tmp_path / "extra.npz"
    np.savez_compressed(path, **arrays, **{f"junk{i}": np.zeros(2**20) for i in range(n_entries)})
    peak = _peak_bytes(lambda: _assert_refused(path, "not a numbanet model file", "'junk0'", "not part of the format"))
    assert peak < 2**20, f"{peak / 2**20:.1f} MiB"


def test_metadata_entries_are_bounded_together(tmp_path, monkeypatch):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    monkeypatch.setattr(numbanet.config, "MAX_METADATA_BYTES", 2**16)
    _rewrite(path, custom_fingerprint_swish=np.zeros(2**14))  # 128 KiB of zeros, a few hundred bytes deflated
    peak = _peak_bytes(lambda: _assert_refused(path, "other than params hold", f"at most {2**16}"))
    assert peak < 2**16


def test_every_entry_save_writes_is_one_load_reads(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["early-stopping"]
    _fit(est, X, target)
    numbanet.save(est, tmp_path / "est.npz")
    swish = numbanet.Activation("swish", lambda z: z / (1 + np.exp(-z)), lambda z: 1.0)
    numbanet.save(numbanet.Network([2, 3, 1], activations=[swish, "identity"]), tmp_path / "net.npz")
    from numbanet.io import _known_entry

    for name in ("est.npz", "net.npz"):
        keys = _arrays(tmp_path / name)
        assert all(_known_entry(k) for k in keys), sorted(keys)
    numbanet.load(tmp_path / "net.npz", custom={"swish": swish})


def test_deeply_nested_estimator_json_is_a_model_file_error(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["multiclass-int"]
    _fit(est, X, target)
    path = tmp_path / "clf.npz"
    numbanet.save(est, path)
    params = json.loads(str(_arrays(path)["estimator_params"]))
    text = json.dumps(params)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _rewrite(path, estimator_params=np.array(text))
    _assert_refused(path, "estimator_params nests 100001 levels deep")  # before: RecursionError escaped
    # brackets inside strings do not count
    text = json.dumps(params)[:-1] + ', "x": "' + "[" * 1000 + '\\"[["}'
    _rewrite(path, estimator_params=np.array(text))
    _assert_refused(path, "unknown estimator parameters")


@pytest.mark.parametrize(
    "case, change, fragment",
    [
        ("multiclass-int", dict(classes_=np.arange(7)), "classes_ has shape (7,); a network of 3 outputs needs 3"),
        ("multiclass-int", dict(classes_=np.arange(3).reshape(3, 1)), "classes_ has shape (3, 1)"),
        ("binary-int64", dict(classes_=np.arange(3)), "a network of 1 output needs 2 classes"),
        ("regressor-2d", dict(feature_names_in_=np.array(["a", "b"])), "feature_names_in_ has shape (2,)"),
        ("regressor-2d", dict(feature_names_in_=np.array([["a", "b"], ["c", "d"]])), "shape (2, 2)"),
    ],
)
def test_inconsistent_estimator_metadata_is_refused(tmp_path, data, case, change, fragment):
    # Before, 7 classes_ for 3 outputs loaded (score 0.333) and a 2-D classes_ made predict raise IndexError.
    X, y = data
    est, target = _estimators(X, y)[case]
    _fit(est, X, target)
    path = tmp_path / "est.npz"
    numbanet.save(est, path)
    _rewrite(path, **change)
    _assert_refused(path, "damaged", fragment)


def test_feature_names_of_the_right_count_load(tmp_path, data):
    pd = pytest.importorskip("pandas")
    X, y = data
    est, target = _estimators(X, y)["regressor-1d"]
    _fit(est, pd.DataFrame(X, columns=list("abcd")), target)
    numbanet.save(est, tmp_path / "est.npz")
    assert numbanet.load(tmp_path / "est.npz").feature_names_in_.tolist() == list("abcd")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_save_refuses_what_load_would_refuse(tmp_path, value):
    net, _, _ = _fitted_net(np.float64)
    net.params[4] = value
    before = net.params.copy()
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        numbanet.save(net, tmp_path / "net.npz")
    assert _files(tmp_path) == []
    np.testing.assert_array_equal(net.params, before)


def test_a_long_valid_file_name_saves(tmp_path):
    # Before, a 230-byte name failed with ENAMETOOLONG: the temporary name added 39 bytes.
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    net, X, _ = _fitted_net(np.float64)
    for length in (name_max - 38, name_max - 1, name_max):
        path = tmp_path / ("m" * (length - 4) + ".npz")
        numbanet.save(net, path)
        numbanet.save(net, path)  # over an existing file too
        np.testing.assert_array_equal(numbanet.load(path).predict(X), net.predict(X))
    name = "é" * ((name_max - 4) // 2) + ".npz"  # multi-byte: the shortened temporary name stays valid UTF-8
    numbanet.save(net, tmp_path / name)
    assert sorted(os.listdir(tmp_path))[-1] == name and not any(f.endswith(".tmp") for f in os.listdir(tmp_path))


def test_stale_temporary_file_of_a_long_name_is_removed(tmp_path):
    from numbanet._atomic import _temp_stem

    name = "m" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 10) + ".npz"
    stem = _temp_stem(str(tmp_path), name)
    assert stem != name
    stale = tmp_path / f".{stem}.{'0' * 32}.tmp"
    stale.write_bytes(b"partial")
    _age(stale)
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / name)
    assert _files(tmp_path) == [name]


def test_read_only_file_system_is_named_as_such(tmp_path, monkeypatch):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            value = getattr(self.st, name)
            return value | os.ST_RDONLY if name == "f_flag" else value

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)))
    with pytest.raises(OSError) as info:
        numbanet.save(net, path)
    assert info.value.errno == errno.EROFS and info.value.filename == str(path)
    assert "read-only file system" in str(info.value) and "chmod" not in str(info.value)
