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

Writes are atomic: the file is written to a temporary file in the same
folder, flushed, fsync'ed and moved over ``path`` with :func:`os.replace`, so
``path`` holds either the old file or the complete new one, never a part.
A file that cannot be read as a numbanet model -- missing, empty, truncated,
corrupted, foreign, holding object (pickled) arrays, or written by a newer
numbanet -- raises :class:`numbanet.ModelFileError` naming the file.
"""

import json
import os
import sys
import uuid

import numpy as np

from numbanet.exceptions import ModelFileError
from numbanet.network import Network

FORMAT_NAME = "numbanet"
#: Version of the file layout written by this numbanet; files of a higher version are refused.
FORMAT_VERSION = 1

_ESTIMATOR_KINDS = ("MLPClassifier", "MLPRegressor")
_SCALAR_FITTED = ("n_features_in_", "n_outputs_", "out_activation_", "loss_", "best_loss_",
                  "best_validation_score_", "n_iter_", "t_")


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
    return {
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activations": np.array(net.activations, dtype=str),
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
    path : str or os.PathLike
        Written exactly as given (no ``.npz`` is appended); an existing file
        is replaced only once the new one is complete.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        For an object numbanet cannot save.
    ValueError
        For an unfitted estimator, or parameters that cannot be stored without pickle.
    OSError
        When the folder is not writable; no file, temporary or partial, is left behind.
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
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: never write through someone else's file; mode 0o666 lets the umask decide, as open() does.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder):
    """Make the rename durable (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------- load


def _read(path):
    """Every array of the file at ``path``, as a dict; ModelFileError for unreadable files."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes); it is not a numbanet model file")
    try:
        # Open the file ourselves: np.load leaks its handle when the zip directory is unreadable.
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not a numbanet model file (a single .npy array, not an .npz archive)")
            with data:
                return {key: data[key] for key in data.files}
    except ValueError as e:
        if isinstance(e, ModelFileError):
            raise
        if "allow_pickle" in str(e) and "Object arrays" in str(e):
            raise ModelFileError(
                f"{path}: contains object arrays (pickled Python objects), which numbanet refuses to load; "
                "numbanet model files hold only plain arrays"
            ) from None
        if "allow_pickle" in str(e):
            raise ModelFileError(f"{path}: not a numbanet model file (not an .npz archive)") from None
        raise ModelFileError(f"{path}: damaged model file ({e})") from None
    except ModelFileError:
        raise
    except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ...
        raise ModelFileError(f"{path}: damaged or truncated model file ({type(e).__name__}: {e})") from None


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


def _network_from(data, path):
    missing = [k for k in ("sizes", "activations", "loss", "dtype", "l2", "dropout", "epochs_trained", "params")
               if k not in data]
    if missing:
        raise ModelFileError(f"{path}: damaged model file (missing {', '.join(missing)})")
    sizes = data["sizes"]
    acts = data["activations"]
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or acts.ndim != 1 or acts.dtype.kind != "U":
        raise ModelFileError(f"{path}: damaged model file (sizes or activations have the wrong type)")
    try:
        net = Network([int(s) for s in sizes], activations=[str(a) for a in acts], loss=_text(data, "loss", path),
                      dtype=_text(data, "dtype", path), seed=None, l2=_float(data, "l2", path),
                      dropout=_float(data, "dropout", path))
    except ModelFileError:
        raise
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: damaged model file (invalid architecture: {e})") from None
    params = data["params"]
    if params.shape != net.params.shape or params.dtype != net.dtype:
        raise ModelFileError(
            f"{path}: damaged model file (params has shape {params.shape} and dtype {params.dtype}; "
            f"the architecture needs {net.params.shape} of {net.dtype})"
        )
    net.params[...] = params
    net.epochs_trained = _int(data, "epochs_trained", path)
    return net


def _estimator_from(kind, data, path):
    from numbanet import estimators  # imports scikit-learn; ImportError with a hint when it is missing

    cls = getattr(estimators, kind)
    for key in ("estimator_params", "fitted", "loss_curve_"):
        if key not in data:
            raise ModelFileError(f"{path}: damaged model file (missing {key})")
    try:
        params = json.loads(_text(data, "estimator_params", path))
        fitted = json.loads(_text(data, "fitted", path))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: damaged model file (unreadable JSON: {e})") from None
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ModelFileError(f"{path}: damaged model file (estimator_params and fitted must be JSON objects)")
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = cls(**params)
    except TypeError as e:
        raise ModelFileError(f"{path}: damaged model file (unknown estimator parameters: {e})") from None
    est.net_ = _network_from(data, path)
    for key, value in fitted.items():
        if key not in _SCALAR_FITTED:
            raise ModelFileError(f"{path}: damaged model file (unknown fitted attribute {key!r})")
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
    return est


def load(path):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Network, MLPClassifier or MLPRegressor
        Predicting bit-for-bit as the saved model did.  It can continue
        training; the optimizer state was not saved, so it starts afresh.

    Raises
    ------
    ModelFileError
        (a :class:`ValueError`) naming the file, when it is missing, empty,
        truncated, corrupted, not a numbanet file, holds object arrays, or was
        written by a newer numbanet.
    """
    path = os.fspath(path)
    data = _read(path)
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
        return _network_from(data, path)
    if kind in _ESTIMATOR_KINDS:
        return _estimator_from(kind, data, path)
    raise ModelFileError(f"{path}: damaged model file (unknown model kind {kind!r})")
