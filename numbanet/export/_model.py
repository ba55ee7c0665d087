"""The layers an exporter writes: a network's, or a fitted estimator's network's."""

from numbanet.network import Network
from numbanet.pieces import Activation


def _network_of(model, what):
    """Return ``(network, estimator or None)`` of a Network or a fitted numbanet estimator."""
    if isinstance(model, Network):
        return model, None
    estimators = _estimator_classes()
    if estimators is not None and isinstance(model, estimators):
        net = model.__dict__.get("net_")
        if net is None:
            raise ValueError(f"this {type(model).__name__} is not fitted yet; call fit before {what}")
        return net, model
    raise ValueError(
        f"{what} takes a numbanet.Network or a fitted numbanet.MLPClassifier or MLPRegressor; "
        f"got {type(model).__name__}"
    )


def _estimator_classes():
    try:
        from numbanet.estimators import MLPClassifier, MLPRegressor
    except ImportError:  # pragma: no cover - numbanet.estimators imports without scikit-learn
        return None
    return (MLPClassifier, MLPRegressor)


def _builtin_layers(net, what):
    """Return ``[(W, b, activation name), ...]``, or ValueError naming a layer with a custom activation."""
    for i, act in enumerate(net.activations):
        if isinstance(act, Activation):
            raise ValueError(
                f"layer {i + 1} has the custom activation {act.name!r}: {what} exports numbanet's built-in "
                "activations only (a numbanet.Activation is compiled Python, which it cannot translate); "
                "use a built-in activation for that layer"
            )
    return list(zip(net.weights, net.biases, net.activation_names))
