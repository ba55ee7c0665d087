"""Exceptions raised by numbanet.

Bad input raises plain :class:`ValueError` (or a subclass), as NumPy and
scikit-learn do, so ``except ValueError`` catches every refused call.
"""


class TrainingDivergedError(ArithmeticError):
    """The training loss became NaN or infinite.

    Raised by :meth:`numbanet.Network.fit`; the network's weights and the
    optimizer state have been restored to the start of the epoch in which it
    happened (the last state known to be finite).

    Epochs are numbered from 0 over the network's whole training, as in
    :attr:`numbanet.History.epoch` (and Keras' ``history.epoch``): ``epoch`` is
    the number that epoch would have had in the history, which is also
    ``net.epochs_trained`` after the restore, and the label of the first epoch
    of the next ``fit``.

    Attributes
    ----------
    epoch : int
        0-based epoch (counting every epoch the network has trained) in which
        the loss or the parameters stopped being finite.
    batch : int
        1-based mini-batch within that epoch.
    """

    def __init__(self, epoch, batch, lr):
        self.epoch = epoch
        self.batch = batch
        self.lr = lr
        super().__init__(
            f"training diverged: the loss or the parameters became NaN or infinite in epoch {epoch} "
            f"(counted from 0, as in History.epoch), batch {batch} of that epoch (counted from 1), "
            f"at learning rate {lr:g}. The weights were restored to the start of that epoch. "
            "Try a lower learning rate, gradient clipping (clip_norm=...), or inputs scaled to unit "
            "variance (e.g. sklearn.preprocessing.StandardScaler)."
        )


class ModelFileError(ValueError):
    """A saved model file is missing, damaged, foreign or of an unknown version."""


class CustomPieceError(ValueError):
    """A custom activation or loss raised an exception inside a ``fit``, ``predict``, ``loss`` or ``gradients``.

    The message names the piece, its function and the input; the exception
    the function raises there (run as Python) is chained as ``__cause__``.
    The network is as it was before the call.
    """
