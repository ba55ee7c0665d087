"""Saving and loading models as ``.npz`` files, without pickle.

:func:`save` writes a :class:`~numbanet.Network`, a fitted
:class:`~numbanet.MLPClassifier` or a fitted :class:`~numbanet.MLPRegressor`
to one ``.npz`` file (a zip of ``.npy`` arrays); :func:`load` reads it back
with ``allow_pickle=False``, so opening a model file never runs code.

What a file holds (every entry a plain typed array; strings are unicode
arrays, JSON text is a 0-d unicode array):

====================  ==========================================================
``format``            ``"numbanet"``
``format_version``    int, :data:`FORMAT_VERSION`
``kind``              ``"Network"``, ``"MLPClassifier"`` or ``"MLPRegressor"``
``sizes``             int64, layer widths
``activations``       unicode, one name per weighted layer
``loss``              unicode
``custom``            unicode, the names among them of custom pieces (:class:`~numbanet.Activation`,
                      :class:`~numbanet.Loss`); absent when there are none
``custom_fingerprint_<name>``  float64, each custom piece's values at fixed points (``load`` refuses a
                      piece of the same name that computes other values)
``dtype``             unicode, ``"float32"`` or ``"float64"``
``l2``, ``dropout``   float64
``epochs_trained``    int64
``params``            the flat parameter vector, in the network's dtype
estimators only:
``estimator_params``  JSON of ``get_params()``
``fitted``            JSON of the scalar fitted attributes (``n_iter_``, ``best_loss_``, ...)
``loss_curve_``       float64; also ``validation_scores_`` (when early stopping)
``classes_``          classifier: typed array (ints stay ints, strings are unicode)
``feature_names_in_`` unicode, when the estimator was fitted on a DataFrame
====================  ==========================================================

The network's random seed and the optimizer state (momentum, Adam moments)
are not saved: a loaded model predicts bit-for-bit like the saved one and can
continue training (``fit``, ``partial_fit``), but the optimizer starts afresh.
A ``random_state`` that is a ``RandomState`` object is saved as None.

Writes are atomic and keep the permissions of the file they replace, as
:mod:`numbanet._atomic` describes.

A file that cannot be read as a numbanet model -- missing, empty, truncated,
corrupted, foreign, holding object (pickled) arrays, holding impossible values
(NaN or infinite parameters, a negative ``epochs_trained``, ``l2``,
``n_iter_`` or ``t_``, a ``dropout`` outside [0, 1)), or written by a newer
numbanet -- raises :class:`numbanet.ModelFileError` naming the file.
:func:`load` takes about the model's own size, whatever the file declares or
compresses: every array's header must declare exactly the bytes its zip entry
holds (and an entry cannot claim more than deflate could unpack from the whole
file); entries the format does not have are refused before they are inflated;
the entries other than ``params`` together may unpack to at most
:data:`numbanet.config.MAX_METADATA_BYTES`; ``sizes`` must declare exactly as
many parameters as ``params`` holds, at most ``max_params``
(:data:`numbanet.config.MAX_PARAMS` by default), before a
:class:`~numbanet.Network` is built; and ``params`` is inflated in chunks of
:data:`numbanet.config.LOAD_CHUNK_BYTES` straight into the network's parameter
vector.  An estimator's JSON may nest at most :data:`numbanet.config.MAX_JSON_DEPTH`
levels, and its ``classes_`` and ``feature_names_in_`` must fit the network.
"""

import contextlib
import json
import math
import os
import re
import sys
import zipfile

import numpy as np

from numbanet import _validation as check
from numbanet import config
from numbanet import pieces as _pieces
from numbanet._atomic import write_atomically
from numbanet.exceptions import ModelFileError
from numbanet.network import Network
from numbanet.pieces import Activation, Loss

FORMAT_NAME = "numbanet"
#: Version of the file layout written by this numbanet; files of a higher version are refused.
FORMAT_VERSION = 1
# zlib's deflate unpacks at most about 1032 bytes per compressed byte.
_MAX_DEFLATE_RATIO = 1032

_ESTIMATOR_KINDS = ("MLPClassifier", "MLPRegressor")
# How a custom piece among an estimator's parameters is written in its JSON: {"numbanet.custom": name}.
_CUSTOM_KEY = "numbanet.custom"
_SCALAR_FITTED = (
    "n_features_in_",
    "n_outputs_",
    "out_activation_",
    "loss_",
    "best_loss_",
    "best_validation_score_",
    "n_iter_",
    "t_",
)


# ------------------------------------------------------------------- save


def _json_default(value):
    """Make NumPy scalars, dtypes and types JSON-serialisable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, np.random.RandomState) or isinstance(value, np.random.Generator):
        return None
    if isinstance(value, (Activation, Loss)):
        return {_CUSTOM_KEY: value.name}
    raise TypeError(f"cannot save a parameter of type {type(value).__name__} without pickle: {value!r}")


def _typed(values, what):
    """``values`` as an array that loads without pickle (no object dtype)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        items = arr.tolist()
        if all(isinstance(v, str) for v in items):
            arr = np.array(items, dtype=str)
        else:
            try:
                arr = np.array(items)
            except (TypeError, ValueError):
                arr = arr  # handled below
        if arr.dtype.kind == "O":
            raise ValueError(f"cannot save {what} of mixed or object type without pickle: {values!r}")
    return arr


def _network_arrays(net):
    non_finite = net.params.size - np.count_nonzero(np.isfinite(net.params))
    if non_finite:  # load refuses such a file: do not write one
        raise ValueError(
            f"cannot save a network whose parameters hold {non_finite} NaN or infinite values "
            f"(of {net.params.size}); load would refuse the file"
        )
    pieces = net.custom_pieces
    custom = sorted(pieces)
    fingerprints = {f"custom_fingerprint_{name}": pieces[name].fingerprint() for name in custom}
    return {
        **({"custom": np.array(custom, dtype=str)} if custom else {}),
        **fingerprints,
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activations": np.array(net.activation_names, dtype=str),
        "loss": np.array(net.loss_name),
        "dtype": np.array(net.dtype.name),
        "l2": np.array(net.l2, dtype=np.float64),
        "dropout": np.array(net.dropout, dtype=np.float64),
        "epochs_trained": np.array(net.epochs_trained, dtype=np.int64),
        "params": np.ascontiguousarray(net.params),
    }


def _estimator_arrays(est):
    kind = type(est).__name__
    if "net_" not in est.__dict__:
        raise ValueError(f"this {kind} is not fitted yet; call fit before saving it")
    arrays = _network_arrays(est.net_)
    params = est.get_params(deep=False)
    arrays["estimator_params"] = np.array(json.dumps(params, default=_json_default, sort_keys=True))
    fitted = {k: getattr(est, k) for k in _SCALAR_FITTED if k in est.__dict__}
    arrays["fitted"] = np.array(json.dumps(fitted, default=_json_default, sort_keys=True))
    arrays["loss_curve_"] = np.array(est.loss_curve_, dtype=np.float64)
    if getattr(est, "validation_scores_", None) is not None:
        arrays["validation_scores_"] = np.array(est.validation_scores_, dtype=np.float64)
    if "classes_" in est.__dict__:
        arrays["classes_"] = _typed(est.classes_, "classes_")
    if "feature_names_in_" in est.__dict__:
        arrays["feature_names_in_"] = _typed(est.feature_names_in_, "feature_names_in_")
    return arrays


def _is_estimator(model):
    module = sys.modules.get("numbanet.estimators")  # not loaded => model cannot be one of them
    return module is not None and isinstance(model, (module.MLPClassifier, module.MLPRegressor))


def save(model, path):
    """Write ``model`` to ``path`` as an ``.npz`` file, atomically.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        Estimators must be fitted.
    path : str, bytes or os.PathLike
        Written exactly as given (no ``.npz`` is appended); an existing file
        is replaced only once the new one is complete, and keeps its
        permission bits.  Temporary files that earlier, killed saves to this
        ``path`` left behind are removed (see the module notes).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        For an object numbanet cannot save.
    ValueError
        For an unfitted estimator, parameters that cannot be stored without
        pickle, or NaN or infinite weights (which :func:`load` would refuse).
    PermissionError
        When ``path`` is an existing read-only file (it is left unchanged).
    OSError
        When the folder is missing or not writable, the disk is full, ...;
        ``filename`` is ``path``.  No file, temporary or partial, is left behind.
    """
    if isinstance(model, Network):
        kind = "Network"
        arrays = _network_arrays(model)
    elif _is_estimator(model):
        kind = type(model).__name__
        arrays = _estimator_arrays(model)
    else:
        raise TypeError(
            f"numbanet.save saves a numbanet.Network, MLPClassifier or MLPRegressor; got {type(model).__name__}"
        )
    arrays = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "kind": np.array(kind),
        **arrays,
    }
    return write_atomically(path, lambda f: np.savez(f, **arrays))


# ------------------------------------------------------------------- load


# Every entry a model file may hold; anything else is refused before it is inflated.
_NETWORK_ENTRIES = (
    "format",
    "format_version",
    "kind",
    "sizes",
    "activations",
    "loss",
    "custom",
    "dtype",
    "l2",
    "dropout",
    "epochs_trained",
    "params",
)
_ESTIMATOR_ENTRIES = (
    "estimator_params",
    "fitted",
    "loss_curve_",
    "validation_scores_",
    "classes_",
    "feature_names_in_",
)
_FINGERPRINT = "custom_fingerprint_"
# An .npy header is at most 65 535 bytes plus its magic and length (format 1.0; 2.0 files are no larger here).
_MAX_HEADER = 2**16 + 16


def _known_entry(key):
    custom = key.startswith(_FINGERPRINT) and key[len(_FINGERPRINT) :].isidentifier()
    return key in _NETWORK_ENTRIES or key in _ESTIMATOR_ENTRIES or custom


@contextlib.contextmanager
def _opened(path, max_params):
    """Yield the entries of the model file at ``path`` as a dict, while it is open; ModelFileError if unreadable.

    Every entry but ``params`` is read (each checked before it is inflated);
    ``params`` is a :class:`_Params` that copies itself into a network's
    parameter vector, so the file's values never take memory of their own.
    """
    _check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(np.lib.format.MAGIC_PREFIX))
            if head == np.lib.format.MAGIC_PREFIX:
                raise ModelFileError(f"{path}: not a numbanet model file (a single .npy array, not an .npz archive)")
            if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # what np.load takes for a zip
                raise ModelFileError(f"{path}: not a numbanet model file (not an .npz archive)")
            f.seek(0)
            size = os.fstat(f.fileno()).st_size
            with zipfile.ZipFile(f) as zf:
                yield _entries(zf, size, path, max_params)
    except ModelFileError:
        raise
    except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, NotImplementedError, ...
        raise ModelFileError(f"{path}: damaged or truncated model file ({type(e).__name__}: {e})") from None


def _check_file(path):
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes); it is not a numbanet model file")


def _entries(zf, size, path, max_params):
    """Check every entry's name and declared size, then read them (``params`` as a :class:`_Params`)."""
    infos = zf.infolist()
    keys = [info.filename[:-4] if info.filename.endswith(".npy") else info.filename for info in infos]
    if "format" not in keys:
        raise ModelFileError(f"{path}: not a numbanet model file (an .npz without the 'format' entry)")
    unknown = [k for k in keys if not _known_entry(k)]
    if unknown:
        raise ModelFileError(
            f"{path}: not a numbanet model file (entries {unknown[:5]} are not part of the format; "
            "numbanet does not read them)"
        )
    if len(set(keys)) != len(keys):
        raise ModelFileError(f"{path}: damaged model file (an entry name appears twice)")
    metadata = 0
    for key, info in zip(keys, infos):
        limit = size if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO * size
        if info.file_size > limit:
            raise ModelFileError(
                f"{path}: damaged model file (entry {key!r} claims {info.file_size} bytes, "
                f"more than a file of {size} bytes can hold)"
            )
        if key == "params":
            cap = max_params * 8 + _MAX_HEADER
            if info.file_size > cap:
                raise ModelFileError(
                    f"{path}: entry 'params' holds {info.file_size} bytes, more than the {max_params} "
                    "parameters numbanet loads (max_params) take"
                )
        else:
            metadata += info.file_size
    if metadata > config.MAX_METADATA_BYTES:
        raise ModelFileError(
            f"{path}: damaged model file (its entries other than params hold {metadata} bytes; "
            f"numbanet reads at most {config.MAX_METADATA_BYTES})"
        )
    return dict(_read_entry(zf, info, key, path) for key, info in zip(keys, infos))


def _read_entry(zf, info, key, path):
    """``(key, array)`` of one ``.npy`` entry of the zip, its sizes checked before anything is allocated.

    np.load would allocate the whole array its header declares before it finds
    the data short, so a small file could ask for gigabytes.  Here the header's
    size must equal what the entry holds (whose size :func:`_entries` bounded).
    """
    with zf.open(info) as entry:
        try:
            version = np.lib.format.read_magic(entry)
        except ValueError:
            raise ModelFileError(f"{path}: damaged model file (entry {key!r} is not an .npy array)") from None
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(entry)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(entry)
        else:
            raise ModelFileError(
                f"{path}: damaged model file (entry {key!r} is an .npy array of version "
                f"{version[0]}.{version[1]}; numbanet reads 1.0 and 2.0)"
            )
        if dtype.hasobject:
            raise ModelFileError(
                f"{path}: contains object arrays (pickled Python objects), which numbanet refuses to load; "
                "numbanet model files hold only plain arrays"
            )
        declared = math.prod(shape) * dtype.itemsize
        header = entry.tell()
        held = info.file_size - header
        if declared != held:
            raise ModelFileError(
                f"{path}: damaged or truncated model file (entry {key!r} declares shape {shape} "
                f"of {dtype}, {declared} bytes, but holds {held} bytes)"
            )
        if key == "params":
            return key, _Params(zf, info, header, shape, dtype, path)
        entry.seek(0)
        return key, np.lib.format.read_array(entry, allow_pickle=False)


class _Params:
    """The ``params`` entry of an open model file: its shape and dtype, and :meth:`fill` to read it into place."""

    def __init__(self, zf, info, header, shape, dtype, path):
        self._zf, self._info, self._header, self._path = zf, info, header, path
        self.shape, self.dtype = tuple(shape), dtype

    def fill(self, out):
        """Inflate the values straight into ``out`` (a C-contiguous array of this shape and dtype), chunk by chunk.

        ModelFileError, naming the file, for a damaged entry or NaN or infinite values.
        """
        raw = out.reshape(-1).view(np.uint8)
        chunk = config.LOAD_CHUNK_BYTES
        try:
            with self._zf.open(self._info) as entry:
                entry.seek(self._header)
                done = 0
                while done < raw.size:
                    got = entry.readinto(raw[done : done + chunk])
                    if not got:
                        raise EOFError(f"params ends after {done} of {raw.size} bytes")
                    done += got
        except Exception as e:  # zlib.error, BadZipFile (a bad CRC), EOFError, OSError
            raise ModelFileError(f"{self._path}: damaged or truncated model file ({type(e).__name__}: {e})") from None
        step = max(1, chunk // out.itemsize)
        flat = out.reshape(-1)
        non_finite = sum(
            int(step_size - np.count_nonzero(np.isfinite(flat[i : i + step])))
            for i, step_size in ((i, min(step, flat.size - i)) for i in range(0, flat.size, step))
        )
        if non_finite:
            raise ModelFileError(f"{self._path}: damaged model file (params holds {non_finite} NaN or infinite values)")


def _text(data, key, path):
    arr = data[key]
    if arr.shape != () or arr.dtype.kind != "U":
        raise ModelFileError(f"{path}: damaged model file ({key!r} should be a text scalar)")
    return str(arr)


def _int(data, key, path):
    arr = data[key]
    if arr.shape != () or arr.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: damaged model file ({key!r} should be an integer scalar)")
    return int(arr)


def _float(data, key, path):
    arr = data[key]
    if arr.shape != () or arr.dtype.kind != "f":
        raise ModelFileError(f"{path}: damaged model file ({key!r} should be a float scalar)")
    return float(arr)


def _custom_pieces(data, path, custom):
    """Look up the custom pieces the file names in the user's ``custom`` mapping."""
    if "custom" not in data:
        return {}
    names = data["custom"]
    if names.ndim != 1 or names.dtype.kind != "U":
        raise ModelFileError(f"{path}: damaged model file ('custom' should be a list of names)")
    missing = [str(n) for n in names if str(n) not in custom]
    if missing:
        listed = ", ".join(repr(n) for n in missing)
        example = ", ".join(f"{n!r}: ..." for n in missing)
        raise ModelFileError(
            f"{path}: the model uses custom activations or losses {listed}; pass them to load: "
            f"numbanet.load(path, custom={{{example}}}) with the numbanet.Activation / numbanet.Loss objects"
        )
    return {str(n): custom[str(n)] for n in names}


def _check_fingerprints(data, path, pieces):
    """Refuse a custom piece that computes other values than the one saved under its name.

    Files hold the values at :data:`numbanet.pieces.PROBE_Z` / ``PROBE_AY``; those written before
    numbanet sampled densely, at the few old points.
    """
    for name, piece in pieces.items():
        key = f"custom_fingerprint_{name}"
        if key not in data:
            continue
        saved = data[key]
        old = _pieces._OLD_PROBE_AY if isinstance(piece, Loss) else _pieces._OLD_PROBE_Z
        now = piece.fingerprint(old if saved.shape == (2 * len(old),) else None)
        if saved.shape != now.shape:
            raise ModelFileError(f"{path}: damaged model file ({key} has shape {saved.shape}, not {now.shape})")
        close = np.isclose(now, saved, rtol=1e-12, atol=1e-300, equal_nan=True)
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            points = _pieces.PROBE_AY if isinstance(piece, Loss) else _pieces.PROBE_Z
            points = old if saved.shape == (2 * len(old),) else points
            half = len(points)
            raise ModelFileError(
                f"{path}: the {name!r} passed in custom computes other values than the {name!r} the model was "
                f"saved with: its {'derivative' if i >= half else 'function'} at {points[i % half]!r} gives "
                f"{now[i]!r}, saved {saved[i]!r} ({int((~close).sum())} of {now.size} checked values differ); "
                "pass the same function and derivative"
            )


def _network_from(data, path, custom, max_params):
    missing = [
        k
        for k in ("sizes", "activations", "loss", "dtype", "l2", "dropout", "epochs_trained", "params")
        if k not in data
    ]
    if missing:
        raise ModelFileError(f"{path}: damaged model file (missing {', '.join(missing)})")
    sizes = data["sizes"]
    acts = data["activations"]
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or acts.ndim != 1 or acts.dtype.kind != "U":
        raise ModelFileError(f"{path}: damaged model file (sizes or activations have the wrong type)")
    # Everything is checked before the Network (and its parameter vector) is built; Python ints cannot overflow.
    sizes = sizes.tolist()
    if len(sizes) < 2 or min(sizes) < 1:
        raise ModelFileError(
            f"{path}: damaged model file (invalid architecture: sizes is {sizes}; it must be "
            "at least 2 layer widths, each >= 1)"
        )
    n_params = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))
    if n_params > max_params:
        raise ModelFileError(
            f"{path}: sizes {sizes} declare {n_params} parameters, more than the {max_params} "
            "numbanet loads (max_params)"
        )
    dtype = _text(data, "dtype", path)
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: damaged model file (invalid architecture: dtype {dtype!r})")
    params = data["params"]
    if not isinstance(params, _Params) or params.shape != (n_params,) or params.dtype != np.dtype(dtype):
        raise ModelFileError(
            f"{path}: damaged model file (params has shape {params.shape} and dtype {params.dtype}; "
            f"the architecture needs ({n_params},) of {dtype})"
        )
    l2 = _float(data, "l2", path)
    if not (math.isfinite(l2) and l2 >= 0):
        raise ModelFileError(f"{path}: damaged model file (l2 is {l2}; it must be a finite number >= 0)")
    dropout = _float(data, "dropout", path)
    if not 0 <= dropout < 1:
        raise ModelFileError(f"{path}: damaged model file (dropout is {dropout}; it must be in [0, 1))")
    epochs = _int(data, "epochs_trained", path)
    if epochs < 0:
        raise ModelFileError(f"{path}: damaged model file (epochs_trained is {epochs}; it must be >= 0)")
    pieces = _custom_pieces(data, path, custom)
    loss = _text(data, "loss", path)
    if loss in pieces and not isinstance(pieces[loss], Loss):
        raise ModelFileError(
            f"{path}: the model's loss {loss!r} is a custom loss; custom[{loss!r}] must be a "
            f"numbanet.Loss, not {pieces[loss]!r}"
        )
    for name in set(str(a) for a in acts) & set(pieces):
        if not isinstance(pieces[name], Activation):
            raise ModelFileError(
                f"{path}: {name!r} is a custom activation of the model; custom[{name!r}] must be "
                f"a numbanet.Activation, not {pieces[name]!r}"
            )
    _check_fingerprints(data, path, pieces)
    try:
        net = Network(
            sizes,
            activations=[pieces.get(str(a), str(a)) for a in acts],
            loss=pieces.get(loss, loss),
            dtype=dtype,
            seed=None,
            l2=l2,
            dropout=dropout,
        )
    except ModelFileError:
        raise
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: damaged model file (invalid architecture: {e})") from None
    params.fill(net.params)
    net.epochs_trained = epochs
    return net


def _resolve_custom(value, custom, path):
    """Put custom pieces back into estimator parameters read from JSON."""
    if isinstance(value, dict) and set(value) == {_CUSTOM_KEY}:
        name = value[_CUSTOM_KEY]
        if name not in custom:
            raise ModelFileError(
                f"{path}: the estimator uses the custom piece {name!r}; pass it to load: "
                f"numbanet.load(path, custom={{{name!r}: ...}})"
            )
        return custom[name]
    if isinstance(value, list):
        return [_resolve_custom(v, custom, path) for v in value]
    return value


def _estimator_from(kind, data, path, custom, max_params):
    from numbanet import estimators  # imports scikit-learn; ImportError with a hint when it is missing

    cls = getattr(estimators, kind)
    for key in ("estimator_params", "fitted", "loss_curve_"):
        if key not in data:
            raise ModelFileError(f"{path}: damaged model file (missing {key})")
    params = _json(data, "estimator_params", path)
    fitted = _json(data, "fitted", path)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    params = {k: _resolve_custom(v, custom, path) for k, v in params.items()}
    try:
        est = cls(**params)
    except TypeError as e:
        raise ModelFileError(f"{path}: damaged model file (unknown estimator parameters: {e})") from None
    est.net_ = _network_from(data, path, custom, max_params)
    for key, value in fitted.items():
        if key not in _SCALAR_FITTED:
            raise ModelFileError(f"{path}: damaged model file (unknown fitted attribute {key!r})")
        if key in ("n_iter_", "t_") and (type(value) is not int or value < 0):
            raise ModelFileError(f"{path}: damaged model file ({key} is {value!r}; it must be an integer >= 0)")
        setattr(est, key, value)
    est.loss_curve_ = [float(v) for v in data["loss_curve_"]]
    est.validation_scores_ = [float(v) for v in data["validation_scores_"]] if "validation_scores_" in data else None
    if "feature_names_in_" in data:
        est.feature_names_in_ = np.asarray(data["feature_names_in_"], dtype=object)
    if kind == "MLPClassifier":
        if "classes_" not in data:
            raise ModelFileError(f"{path}: damaged model file (missing classes_)")
        est.classes_ = data["classes_"]
    if est.__dict__.get("n_features_in_") != est.net_.sizes[0] or est.__dict__.get("n_outputs_") != est.net_.sizes[-1]:
        raise ModelFileError(f"{path}: damaged model file (n_features_in_ / n_outputs_ do not match the network)")
    _check_estimator_arrays(est, path)
    return est


def _check_estimator_arrays(est, path):
    """Refuse ``classes_`` and ``feature_names_in_`` that do not fit the network (predict would fail or lie)."""
    n_in, n_out = est.net_.sizes[0], est.net_.sizes[-1]
    names = est.__dict__.get("feature_names_in_")
    if names is not None and (names.ndim != 1 or names.size != n_in):
        raise ModelFileError(
            f"{path}: damaged model file (feature_names_in_ has shape {names.shape}; the network takes {n_in} features)"
        )
    classes = est.__dict__.get("classes_")
    if classes is None:
        return
    wanted = 2 if n_out == 1 else n_out  # one sigmoid output for two classes; else one output per class or label
    if classes.ndim != 1 or classes.size != wanted:
        raise ModelFileError(
            f"{path}: damaged model file (classes_ has shape {classes.shape}; a network of {n_out} "
            f"output{'s' if n_out > 1 else ''} needs {wanted} classes in a 1-D array)"
        )


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)


def _json(data, key, path):
    """Return the JSON object in the text entry ``key``, its nesting bounded before it is parsed."""
    text = _text(data, key, path)
    # Brackets outside strings, counted without recursion: json.loads would raise RecursionError.
    brackets = np.frombuffer(_JSON_STRING.sub("", text).encode(), dtype=np.uint8)
    steps = np.isin(brackets, _OPEN).astype(np.int64) - np.isin(brackets, _CLOSE)
    deepest = int(np.cumsum(steps).max(initial=0))
    if deepest > config.MAX_JSON_DEPTH:
        raise ModelFileError(
            f"{path}: damaged model file ({key} nests {deepest} levels deep; numbanet reads at most "
            f"{config.MAX_JSON_DEPTH})"
        )
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: damaged model file (unreadable JSON in {key}: {e})") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: damaged model file (estimator_params and fitted must be JSON objects)")
    return value


def load(path, custom=None, *, max_params=None):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    custom : dict, optional
        The custom pieces the model uses, by name: ``{"swish": swish,
        "log_cosh": log_cosh}`` with :class:`numbanet.Activation` and
        :class:`numbanet.Loss` objects (Keras' ``custom_objects``
        convention).  A file saves only their names; ``net.custom_pieces``
        gives the mapping of a network at hand.
    max_params : int, optional
        The most parameters the file may declare (default
        :data:`numbanet.config.MAX_PARAMS`): a server loading files it does
        not trust caps the memory one load may take, about ``max_params``
        times 4 or 8 bytes, before anything is inflated.

    Returns
    -------
    Network, MLPClassifier or MLPRegressor
        Predicting bit-for-bit as the saved model did.  It can continue
        training; the optimizer state was not saved, so it starts afresh.

    Raises
    ------
    ModelFileError
        (a :class:`ValueError`) naming the file, when it is missing, empty,
        truncated, corrupted, not a numbanet file, holds object arrays or
        impossible values (NaN parameters, a negative ``epochs_trained``, ...),
        declares arrays larger than it holds, or was written by a newer
        numbanet; also when it uses a custom piece that ``custom`` lacks
        (the message names it).
    ValueError
        For a ``custom`` that is not a mapping of names to Activation or Loss objects.
    """
    path = os.fsdecode(path)
    custom = {} if custom is None else custom
    if not isinstance(custom, dict) or not all(
        isinstance(k, str) and isinstance(v, (Activation, Loss)) for k, v in custom.items()
    ):
        raise ValueError(
            f"custom must be a dict of names to numbanet.Activation / numbanet.Loss objects; got {custom!r}"
        )
    for name, piece in custom.items():
        if piece.name != name:
            raise ValueError(f"custom[{name!r}] is the piece named {piece.name!r}; the names must match")
    max_params = config.MAX_PARAMS if max_params is None else check.positive_int(max_params, "max_params")
    with _opened(path, max_params) as data:
        return _model_from(data, path, custom, max_params)


def _model_from(data, path, custom, max_params):
    if "format" not in data:
        raise ModelFileError(f"{path}: not a numbanet model file (an .npz without the 'format' entry)")
    fmt = data["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a numbanet model file (format is {fmt!r}, expected {FORMAT_NAME!r})")
    if "format_version" not in data:
        raise ModelFileError(f"{path}: damaged model file (no format_version)")
    version = _int(data, "format_version", path)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer numbanet (format version {version}); "
            f"this numbanet reads version {FORMAT_VERSION}. Upgrade numbanet to load it."
        )
    if version < 1:
        raise ModelFileError(f"{path}: damaged model file (format version {version})")
    kind = _text(data, "kind", path) if "kind" in data else None
    if kind == "Network":
        return _network_from(data, path, custom, max_params)
    if kind in _ESTIMATOR_KINDS:
        return _estimator_from(kind, data, path, custom, max_params)
    raise ModelFileError(f"{path}: damaged model file (unknown model kind {kind!r})")
