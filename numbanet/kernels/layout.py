r"""Where everything lives in the flat arrays the kernels take: the one description of every layout.

The kernels of :mod:`numbanet.kernels.training` take a network, a data set and
a training run as a handful of flat arrays.  This module says what is where in
each of them; Python and the kernels both read it from here, so a layout
changes in one place.

``spec`` -- the network, int64 (built by :func:`network_spec`)
    ``spec[SPEC_LAYERS]`` weighted layers L, ``spec[SPEC_LOSS]`` the loss
    code, ``spec[SPEC_PARAMS]`` the number of parameters, the four callback
    addresses of the custom pieces from ``SPEC_FNS``
    (:mod:`numbanet.kernels.pieces`), then five per-layer tables (views by
    :func:`spec_parts`): ``sizes`` (L + 1 layer widths, input first),
    ``w_off`` and ``b_off`` (where each ``W^l`` and ``b^l`` starts in
    ``theta``), ``acts`` (activation codes) and ``custom`` (each layer's index
    among the custom activations, -1 for built-ins).
``theta`` -- every parameter, layer after layer
    ``W^1`` row-major of shape ``(n_1, n_0)``, ``b^1``, ``W^2``, ... (offsets
    by :func:`param_offsets`).
``ws`` -- the work buffer of one call (length :func:`work_size`)
    For batches of up to ``cap`` rows, per layer ``l``: the activations
    ``A^l``, the pre-activations ``Z^l`` (weighted layers) and the dropout
    mask ``M^l`` (hidden layers); then the target batch, the row weights, two
    delta buffers as wide as the widest weighted layer (used alternately going
    backwards) and a gradient of ``n_params`` entries.  Offsets by
    :func:`work_offsets`; the capacity of a buffer follows from its length
    (:func:`work_capacity`), since the layout is linear in ``cap``.
``state`` -- the optimizer state, ``(rows, n_params)``
    ``rows`` by optimizer: :func:`numbanet.kernels.updates.state_rows`.
``backup`` -- the start of the current epoch, ``(1 + rows [+ 1], n_params)``
    Row 0 ``theta``, then the optimizer state's rows, then -- in a run whose
    mini-batches are too large for its work buffer, computed in parts -- the
    running gradient of the current batch (:func:`backup_shape`).
``run`` -- a training run's floats, float64 (built by :func:`run_floats`)
    ``l2``, ``dropout``, ``clip``, the sum of the sample weights, the running
    weighted cost of the current epoch (updated), the running cost and the
    sample-weight sum of a mini-batch computed in parts (updated), the optimizer's
    hyper-parameters (:mod:`numbanet.kernels.updates`), then per epoch its
    learning rate and (filled as it ends) its training cost; views by
    :func:`run_parts`.
``pos`` -- a training run's integers, int64 of ``N_POS``
    The run's exact position, read and updated in place so that the next
    call continues where this one stopped, then its settings (optimizer
    code, shuffle, batch size) and the call's budget (the ``POS_*`` entries
    below; the position's keep the indices they have always had).

The ``spec_parts`` and ``run_parts`` views are jitted for the kernels;
Python takes the same views through their ``py_func`` (plain NumPy slicing),
so the two can never disagree.
"""

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.pieces import N_FNS
from numbanet.kernels.updates import N_HYPER

# --- spec ------------------------------------------------------------------------------------
SPEC_LAYERS = 0
SPEC_LOSS = 1
SPEC_PARAMS = 2
SPEC_FNS = 3
SPEC_TABLES = SPEC_FNS + N_FNS

# --- run -------------------------------------------------------------------------------------
RUN_L2 = 0
RUN_DROPOUT = 1
RUN_CLIP = 2
RUN_SW_TOTAL = 3
RUN_ACC = 4  # running weighted cost of the current epoch
RUN_PART_COST = 5  # a mini-batch computed in parts: the cost of its parts done so far ...
RUN_BATCH_WSUM = 6  # ... and the sum of its sample weights (all its rows)
RUN_HYPER = 7  # N_HYPER optimizer hyper-parameters, then the epochs' rates and costs
RUN_EPOCHS = RUN_HYPER + N_HYPER

# --- pos -------------------------------------------------------------------------------------
# The position, kept by the kernel.
POS_EPOCH = 0  # epochs of the run completed
POS_BATCH = 1  # next mini-batch of the current epoch (0: the epoch has not started)
POS_T = 2  # optimizer steps taken in total
POS_T0 = 3  # optimizer steps at the start of the current epoch
POS_STATUS = 4  # OK, DIVERGED or BAD_INPUT
POS_BAD_EPOCH = 5  # on divergence or bad input: the run's epoch ...
POS_BAD_BATCH = 6  # ... and the batch where it happened
POS_SAMPLES = 7  # rows processed by the run (every mini-batch, the partial epoch included)
POS_DONE = 8  # steps run by the last call: mini-batches, or parts of one too large for the work buffer
POS_SAMPLES0 = 9  # rows processed at the start of the current epoch
POS_BAD_ROW = 10  # on bad input: the row of X
# Settings, set by the caller before the first call.
POS_OPTIMIZER = 11  # optimizer code (numbanet.kernels.updates)
POS_SHUFFLE = 12  # 1: draw a fresh row order at each epoch's start
POS_BATCH_SIZE = 13
# The call: set by the caller before each call.
POS_BUDGET = 14  # the most steps the call runs (0 runs none: a call that only compiles or loads)
POS_STOP_AT_EPOCH_END = 15  # 1: return once an epoch ends, so Python can do per-epoch work
# A mini-batch larger than the work buffer is computed in parts, one kernel step each.
POS_PART = 16  # rows of the current mini-batch done (0: none; the batch has not started)
POS_RNG_BATCH = 17  # the generator's state as the current mini-batch found it (its uint64 bits)
N_POS = 18


def param_offsets(sizes):
    """Return ``(w_off, b_off, n_params)``: where each ``W^l`` and ``b^l`` starts in ``theta``, and its length."""
    w_off, b_off = [], []
    pos = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w_off.append(pos)
        pos += n_out * n_in
        b_off.append(pos)
        pos += n_out
    return np.array(w_off, dtype=np.int64), np.array(b_off, dtype=np.int64), pos


def network_spec(sizes, acts, custom, loss, fns):
    """Return the int64 ``spec`` of a network.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first.
    acts, custom : sequence of int
        Activation code and custom index (-1 for built-ins) of each weighted layer.
    loss : int
        Loss code.
    fns : tuple of 4 ints
        Callback addresses of the custom pieces (:mod:`numbanet.kernels.pieces`).
    """
    L = len(sizes) - 1
    w_off, b_off, n_params = param_offsets(sizes)
    spec = np.empty(SPEC_TABLES + 5 * L + 1, dtype=np.int64)
    spec[SPEC_LAYERS] = L
    spec[SPEC_LOSS] = loss
    spec[SPEC_PARAMS] = n_params
    spec[SPEC_FNS : SPEC_FNS + N_FNS] = fns
    spec[SPEC_TABLES:] = np.concatenate([sizes, w_off, b_off, acts, custom])
    return spec


@jit
def spec_parts(spec):
    """Return the views ``(sizes, w_off, b_off, acts, custom)`` of a ``spec``."""
    L = spec[SPEC_LAYERS]
    s = SPEC_TABLES
    sizes = spec[s : s + L + 1]
    s += L + 1
    return sizes, spec[s : s + L], spec[s + L : s + 2 * L], spec[s + 2 * L : s + 3 * L], spec[s + 3 * L : s + 4 * L]


@jit
def spec_fns(spec):
    """Return the callback addresses of a ``spec`` as the tuple of 4 ints the activation kernels take."""
    f = SPEC_FNS
    return (spec[f], spec[f + 1], spec[f + 2], spec[f + 3])


# --- the work buffer -------------------------------------------------------------------------
# work_offsets(spec, cap) holds LAYER_PARTS offsets per layer l = 0..L (read by layer_offset), then
# WORK_END + 1 offsets of the buffers after the layers' (read by tail_offset).
LAYER_PARTS = 3
WORK_A = 0  # activations A^l
WORK_Z = 1  # pre-activations Z^l (weighted layers)
WORK_M = 2  # dropout mask M^l (hidden layers)
WORK_Y = 0  # target batch
WORK_RW = 1  # row weights
WORK_D0 = 2  # the two delta buffers
WORK_D1 = 3
WORK_GRAD = 4  # gradient (n_params)
WORK_END = 5  # the buffer's length


@jit
def work_offsets(spec, cap):
    """Return the int64 offsets of every part of the work buffer for batches of ``cap`` rows (see above)."""
    sizes = spec_parts(spec)[0]
    L = sizes.size - 1
    widest = 0  # deltas never reach the input layer
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    off = np.empty(LAYER_PARTS * (L + 1) + WORK_END + 1, dtype=np.int64)
    pos = 0
    for l in range(L + 1):
        off[LAYER_PARTS * l + WORK_A] = pos
        pos += cap * sizes[l]
        off[LAYER_PARTS * l + WORK_Z] = pos
        pos += cap * sizes[l] if l > 0 else 0
        off[LAYER_PARTS * l + WORK_M] = pos
        pos += cap * sizes[l] if 0 < l < L else 0
    tail = LAYER_PARTS * (L + 1)
    for k, length in enumerate((cap * sizes[L], cap, cap * widest, cap * widest, spec[SPEC_PARAMS])):
        off[tail + k] = pos
        pos += length
    off[tail + WORK_END] = pos
    return off


# The two readers below are inlined: called with a constant ``part``, a kernel of their own would
# be compiled once for every constant (Numba specialises on literal arguments).
@jit_inline
def layer_offset(off, l, part):
    """Return where layer ``l``'s ``part`` (``WORK_A``, ``WORK_Z`` or ``WORK_M``) starts, from :func:`work_offsets`."""
    return off[LAYER_PARTS * l + part]


@jit_inline
def tail_offset(off, part):
    """Return where ``part`` (``WORK_Y`` ... ``WORK_END``) starts, from :func:`work_offsets`."""
    return off[off.size - 1 - WORK_END + part]


@jit
def work_size(spec, cap):
    """Return the length of the work buffer for batches of up to ``cap`` rows."""
    return work_offsets(spec, cap)[-1]


@jit
def work_capacity(spec, length):
    """Return the rows ``cap`` of a work buffer of ``length`` (the inverse of :func:`work_size`)."""
    zero = np.int64(0)  # not the literal 0, which would compile work_size once more for each constant
    fixed = work_size(spec, zero)
    return (length - fixed) // (work_size(spec, zero + 1) - fixed)


# --- optimizer state and backup --------------------------------------------------------------
def backup_shape(n_params, state_rows, in_parts=False):
    """Return the shape of a run's backup: ``theta``, the optimizer state's rows and, ``in_parts``, a batch's gradient.

    ``in_parts``: the run's mini-batches are larger than its work buffer, so
    they are computed in parts (:func:`numbanet.kernels.training.batch_part`).
    """
    return (1 + state_rows + bool(in_parts), n_params)


def backup_state(backup, state_rows):
    """Return the view of the optimizer state's ``state_rows`` rows in a run's ``backup``."""
    return backup[1 : 1 + state_rows]


# --- run -------------------------------------------------------------------------------------
def run_floats(l2, dropout, clip, sw_total, hyper, lrs):
    """Return the float64 ``run`` array of a training run (running cost 0, epoch costs 0)."""
    head = np.zeros(RUN_HYPER, dtype=np.float64)
    head[[RUN_L2, RUN_DROPOUT, RUN_CLIP, RUN_SW_TOTAL]] = l2, dropout, clip, sw_total
    return np.concatenate([head, hyper, lrs, np.zeros(len(lrs))])


@jit
def run_parts(run):
    """Return the views ``(hyper, lrs, epoch_losses)`` of a ``run`` array."""
    n_epochs = (run.size - RUN_EPOCHS) // 2
    e = RUN_EPOCHS
    return run[RUN_HYPER:e], run[e : e + n_epochs], run[e + n_epochs : e + 2 * n_epochs]
