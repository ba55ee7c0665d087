"""PyTorch: :func:`to_torch` and :func:`from_torch`."""

import numpy as np

from numbanet.export._model import _builtin_layers, _network_of
from numbanet.kernels.activations import BUILTINS, LEAKY_SLOPE
from numbanet.network import Network

#: The smallest Softplus threshold from_torch accepts: above it the difference e^-x is below 2.1e-9.
_MIN_SOFTPLUS_THRESHOLD = 20.0


def _torch_activation(nn, name):
    """Return the ``torch.nn`` module of the built-in activation ``name`` (its registry entry's), or None."""
    make = BUILTINS[name].torch
    return None if make is None else make(nn)


def to_torch(model):
    """Return the network as a ``torch.nn.Sequential`` of ``Linear`` and activation modules.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A network, or a fitted estimator (its ``net_``).

    Returns
    -------
    torch.nn.Sequential
        ``Linear(n_in, n_out)`` per layer (weights and biases copied, in the
        network's dtype) each followed by its activation module, the one
        its entry in :data:`numbanet.kernels.activations.BUILTINS` names
        (none for ``identity``): ``Sigmoid``, ``Tanh``, ``ReLU``,
        ``LeakyReLU(0.01)``, ``Softmax(dim=1)``, ``ELU(alpha=1)``, ``GELU()``
        (exact erf), ``SiLU``, ``Softplus(beta=1, threshold=40)``, ...  Its output is
        ``net.predict`` (for a classifier, the probabilities of the
        network's output units).

    Raises
    ------
    ValueError
        For a layer with a custom :class:`numbanet.Activation`.
    ImportError
        When torch is not installed.
    """
    net, _ = _network_of(model, "to_torch")
    layers = _builtin_layers(net, "to_torch")
    import torch
    from torch import nn

    tdtype = torch.float64 if net.dtype == np.float64 else torch.float32
    modules = []
    for W, b, act in layers:
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(W)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        modules.append(linear)
        module = _torch_activation(nn, act)
        if module is not None:
            modules.append(module)
    return nn.Sequential(*modules)


def _from_torch_activation(nn, module, index):
    """Return numbanet's name for an activation module, or raise ValueError naming the module and its index."""

    def refuse(why):
        raise ValueError(f"module {index} of the Sequential, {module!r}, {why}")

    if type(module) is nn.LeakyReLU:
        if module.negative_slope != LEAKY_SLOPE:
            refuse(f"has negative_slope={module.negative_slope}; numbanet's leaky_relu has slope {LEAKY_SLOPE}")
        return "leaky_relu"
    if type(module) is nn.ELU:
        if module.alpha != 1.0:
            refuse(f"has alpha={module.alpha}; numbanet's elu has alpha 1")
        return "elu"
    if type(module) is nn.GELU:
        if module.approximate != "none":
            refuse(
                f"uses approximate={module.approximate!r}; numbanet's gelu is the exact erf form (approximate='none')"
            )
        return "gelu"
    if type(module) is nn.Softplus:
        if module.beta != 1 or module.threshold < _MIN_SOFTPLUS_THRESHOLD:
            refuse(
                f"has beta={module.beta}, threshold={module.threshold}; numbanet's softplus is beta=1 "
                f"(threshold {_MIN_SOFTPLUS_THRESHOLD:g} or more)"
            )
        return "softplus"
    if type(module) is nn.Softmax:
        if module.dim not in (1, -1):
            refuse(f"normalises over dim={module.dim}; numbanet's softmax is over the units (dim=1 or -1)")
        return "softmax"
    ours = {name: b.torch(nn) for name, b in BUILTINS.items() if b.torch is not None}
    for name, m in ours.items():
        if type(module) is type(m):
            if _settings(module) != _settings(m):
                refuse(f"has settings {_settings(module)}; numbanet's {name} is {m!r}")
            return name
    refuse(
        "is not a layer numbanet has: from_torch reads Linear layers, each followed by at most one of "
        f"{', '.join(repr(m) for m in ours.values())}, or Identity"
    )


def _settings(module):
    """Return a module's settings that change what it computes (not ``inplace``, not ``training``)."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k not in ("inplace", "training")}


def _check_tensors(torch, linear, index):
    """Refuse a Linear whose weights are not real numbers here: meta-device (no data) or NaN / infinite."""
    for what, tensor in (("weight", linear.weight), ("bias", linear.bias)):
        if tensor is None:
            continue
        if tensor.is_meta:
            raise ValueError(
                f"module {index} of the Sequential, {linear!r}, has its {what} on the meta device (shapes "
                "without values); materialise it (module.to_empty(device='cpu') and load the weights) first"
            )
        bad = int(tensor.numel() - torch.isfinite(tensor.detach()).sum())
        if bad:
            raise ValueError(
                f"module {index} of the Sequential, {linear!r}, has {bad} NaN or infinite values in its {what}"
            )


def from_torch(module, loss=None, seed=None):
    """Read a ``torch.nn.Sequential`` of ``Linear`` and activation modules into a Network.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``Linear`` layers, each followed by at most one supported activation
        (no activation: ``identity``); ``nn.Identity`` modules are skipped.
        Supported: each built-in activation's module (:func:`to_torch`'s),
        ``Softplus(beta=1)`` with a threshold of 20 or more, and
        ``Softmax(dim=1)`` (or ``dim=-1``) after the last ``Linear``.  A
        ``Linear`` without bias gets zero biases.
    loss : str or Loss, optional
        The network's loss; default ``"cross_entropy"`` after a softmax,
        ``"binary_cross_entropy"`` after a sigmoid, ``"poisson"`` after an
        exp (numbanet's ``Exp`` module), else ``"mse"``.
    seed : int, optional
        Seed of the network's random stream (shuffling and dropout in later
        training).

    Returns
    -------
    Network
        In the modules' dtype (float32 or float64), with their weights;
        ``predict`` gives the Sequential's output.

    Raises
    ------
    ValueError
        For anything else: the message names the offending module and its
        index in the Sequential (another module type, an activation with
        other settings, an activation without a Linear before it, a softmax
        before the last Linear, a dtype other than float32 or float64, or
        Linear layers whose widths do not chain), and for weights on the meta
        device or holding NaN or infinite values.

    Examples
    --------
    >>> import numpy as np, numbanet, torch
    >>> net = numbanet.Network([4, 8, 1], activations=["elu", "sigmoid"], loss="binary_cross_entropy", seed=0)
    >>> module = numbanet.to_torch(net)
    >>> module
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ELU(alpha=1.0)
      (2): Linear(in_features=8, out_features=1, bias=True)
      (3): Sigmoid()
    )
    >>> back = numbanet.from_torch(module)
    >>> back.activation_names, back.loss_name, bool(np.array_equal(back.params, net.params))
    (('elu', 'sigmoid'), 'binary_cross_entropy', True)
    """
    import torch
    from torch import nn

    if not isinstance(module, nn.Sequential):
        raise ValueError(
            f"from_torch takes a torch.nn.Sequential of Linear and activation modules; got {type(module).__name__}"
        )
    linears, acts, dtypes = [], [], set()
    for index, m in enumerate(module):
        if isinstance(m, nn.Identity):
            continue
        if type(m) is nn.Linear:
            if linears and m.in_features != linears[-1][1].out_features:
                raise ValueError(
                    f"module {index} of the Sequential, {m!r}, takes {m.in_features} inputs but "
                    f"the Linear before it gives {linears[-1][1].out_features}"
                )
            if m.weight.dtype not in (torch.float32, torch.float64) or (
                m.bias is not None and m.bias.dtype != m.weight.dtype
            ):
                raise ValueError(
                    f"module {index} of the Sequential, {m!r}, has dtype {m.weight.dtype}; "
                    "numbanet takes float32 or float64"
                )
            _check_tensors(torch, m, index)
            dtypes.add(m.weight.dtype)
            linears.append((index, m))
            acts.append(None)
            continue
        name = _from_torch_activation(nn, m, index)
        if not linears:
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, comes before any Linear layer; "
                "numbanet networks start with a weighted layer"
            )
        if acts[-1] is not None:
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, follows another activation; numbanet "
                "layers have one activation each"
            )
        if name == "softmax" and index != max(i for i, mm in enumerate(module) if not isinstance(mm, nn.Identity)):
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, is a softmax before the end; numbanet "
                "allows softmax on the output layer only"
            )
        acts[-1] = name
    if not linears:
        raise ValueError("the Sequential has no Linear layer")
    if len(dtypes) > 1:
        raise ValueError(f"the Linear layers mix dtypes {sorted(str(d) for d in dtypes)}; give them one dtype")
    acts = [a or "identity" for a in acts]
    if loss is None:
        loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "exp": "poisson"}.get(acts[-1], "mse")
    dtype = np.float64 if dtypes.pop() == torch.float64 else np.float32
    sizes = [linears[0][1].in_features] + [m.out_features for _, m in linears]
    net = Network(sizes, activations=acts, loss=loss, dtype=dtype, seed=seed)
    for (_, m), W, b in zip(linears, net.weights, net.biases):
        W[...] = m.weight.detach().cpu().numpy()
        b[...] = 0.0 if m.bias is None else m.bias.detach().cpu().numpy()
    return net
