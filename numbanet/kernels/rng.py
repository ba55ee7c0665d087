"""A small counter-based random generator for shuffling and dropout.

SplitMix64 (Steele, Lea & Flood 2014; the seeder of xoshiro): one 64-bit word
of state, kept by the network in a ``uint64`` array of length 1 and advanced
in place.  The stream therefore continues across jitted calls, whatever way
``fit`` groups epochs into calls (per-epoch callbacks, validation, a progress
bar), never touches Numba's global generator, and costs a few nanoseconds a
draw -- reseeding a Mersenne Twister every epoch would cost microseconds,
more than a whole training step of a small network.
"""

import numpy as np

from numbanet._jit import jit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@jit
def next_u64(state):
    """Advance ``state`` (uint64 array of shape (1,)) and return the next 64-bit output."""
    z = state[0] + _GAMMA
    state[0] = z
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def uniform(state):
    """Return a float64 uniform on [0, 1) from the top 53 bits of the next output."""
    return float(next_u64(state) >> _S11) * (1.0 / 9007199254740992.0)


@jit
def shuffle(order, state):
    """Fisher-Yates shuffle of ``order`` in place.

    The index is drawn by modulo reduction; its bias is below 2**-40 for any
    array that fits in memory.
    """
    for i in range(order.size - 1, 0, -1):
        j = np.int64(next_u64(state) % np.uint64(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp
