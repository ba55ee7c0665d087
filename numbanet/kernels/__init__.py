"""Flat Numba kernels: no classes, no Python objects, ``out`` arguments.

* :mod:`~numbanet.kernels.activations` -- activations and derivatives by code
* :mod:`~numbanet.kernels.losses` -- per-sample costs and output deltas
* :mod:`~numbanet.kernels.dense` -- forward step, hidden delta, layer gradients
* :mod:`~numbanet.kernels.updates` -- in-place optimizer steps on the flat vector
* :mod:`~numbanet.kernels.training` -- whole-network passes and the jitted
  mini-batch loop
"""
