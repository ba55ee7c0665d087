"""Build the tutorial notebooks from the cell sources below.

The ``.ipynb`` files in this folder are generated: edit this script, then run ::

    python notebooks/_build.py            # write the notebooks, outputs cleared
    python notebooks/_build.py --check    # also execute each one (in memory) and report
                                          # its run time and the plots it rendered

CI executes the committed notebooks with ``pytest --nbmake notebooks/``; they
are written with empty outputs so that diffs show only source changes.
"""

import argparse
import sys
import textwrap
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text):
    return new_code_cell(textwrap.dedent(text).strip("\n"))


# ----------------------------------------------------------------------------
# 01 -- backpropagation, step by step
# ----------------------------------------------------------------------------

BACKPROP = [
    md(
        r"""
        # Backpropagation, step by step

        This notebook derives backpropagation for a fully-connected network and puts
        **each equation next to the numbanet kernel that computes it**.  Every step is
        then checked twice: against `numbanet.reference` (the textbook algorithm written
        literally, one sample at a time, column vectors) and against **finite
        differences** of the cost.  The checks are `np.testing` assertions, so if a
        kernel were wrong this notebook would fail.

        **Notation** (as in [docs/derivation.md](../docs/derivation.md)).  Layers are numbered $1, \dots, L$; layer 1 is
        the input $a^1 = x$ and has no parameters.  Layer $l \ge 2$ has weights $W^l$ of
        shape $(n_l, n_{l-1})$ (outputs by inputs), a bias $b^l$ of length $n_l$ and an
        activation $\sigma_l$.  In code a *batch* is a matrix with one sample per row,
        so the per-sample column vector $a^l$ becomes row $i$ of the matrix $A^l$.
        Python lists are 0-based and hold only the weighted layers: `net.weights[0]` is
        $W^2$, `Z[0]` is $Z^2$, and `A[0]` is the input $A^1 = X$.
        """
    ),
    code(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        import numpy as np

        import numbanet
        from numbanet import reference as ref
        from numbanet.kernels import activations as act
        from numbanet.kernels import dense, losses, updates
        from numbanet.kernels.pieces import builtin_fns

        np.set_printoptions(precision=5, suppress=True)
        rng = np.random.default_rng(0)

        sizes = [3, 5, 4, 2]                      # n_1 (input), n_2, n_3, n_4 = n_L
        net = numbanet.Network(sizes, activations=["tanh", "sigmoid", "sigmoid"], loss="mse", seed=0)
        n = 6                                     # samples in the mini-batch
        X = rng.normal(size=(n, sizes[0]))
        Y = rng.uniform(size=(n, sizes[-1]))

        L = net.n_layers                          # weighted layers (the textbook's L - 1)
        codes = [act.CODES[name] for name in net.activations]
        fns, K = builtin_fns(), -1                # no custom activations or loss: see section 1
        weights, biases, names = ref.from_network(net)   # the textbook's copy: column-vector biases
        net
        """
    ),
    code(
        '''
        def numeric_grad(f, x, eps=1e-6):
            """Central differences of the scalar f(x) with respect to every entry of x (restored after)."""
            g = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                old = x[idx]
                x[idx] = old + eps
                plus = f(x)
                x[idx] = old - eps
                minus = f(x)
                x[idx] = old
                g[idx] = (plus - minus) / (2 * eps)
            return g


        def column(v):
            return np.asarray(v, dtype=float).reshape(-1, 1)
        '''
    ),
    md(
        r"""
        ## 1. Forward pass

        For one sample, each layer takes a weighted sum of the previous layer's
        activations and applies its activation function:

        $$ z^l = W^l a^{l-1} + b^l, \qquad a^l = \sigma_l(z^l), \qquad a^1 = x. $$

        With the samples as the rows of $A^{l-1}$ the same equations read

        $$ Z^l = A^{l-1} (W^l)^{\mathsf T} + \mathbf 1\, (b^l)^{\mathsf T}, \qquad A^l = \sigma_l(Z^l). $$

        | equation | kernel |
        | --- | --- |
        | $Z^l = A^{l-1} (W^l)^{\mathsf T} + b^l$ | `dense.linear(A_prev, W, b, out)` (one BLAS call plus the bias) |
        | $A^l = \sigma_l(Z^l)$ | `activations.activate(Z, code, k, fns, out)` |
        | both, fused in one pass | `dense.forward(A_prev, W, b, code, k, fns, out)` (what training uses) |

        Every kernel that applies an activation or a loss element by element also takes
        `k` and `fns`: `fns` is the bundle of compiled callbacks for the network's *custom*
        activations and loss (`numbanet.kernels.pieces`, notebook 05), and `k` is the
        layer's index among its custom activations.  This network uses only built-in
        pieces, so it passes `k = -1` and `fns = builtin_fns()`, whose callbacks are never
        called.
        """
    ),
    code(
        """
        Z, A = [], [X]
        for l in range(L):
            z = np.empty((n, sizes[l + 1]))
            dense.linear(A[l], net.weights[l], net.biases[l], z)     # Z = A_prev W^T + b
            a = np.empty_like(z)
            act.activate(z, codes[l], K, fns, a)                      # A = σ(Z)
            Z.append(z)
            A.append(a)

        # The textbook, one sample (a column vector) at a time:
        for i in range(n):
            zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
            for l in range(L):
                np.testing.assert_allclose(Z[l][i], zs[l].ravel(), rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(A[l + 1][i], as_[l + 1].ravel(), rtol=1e-12, atol=1e-15)

        # The fused kernel and the Network method agree too.
        for l in range(L):
            fused = np.empty_like(A[l + 1])
            dense.forward(A[l], net.weights[l], net.biases[l], codes[l], K, fns, fused)
            np.testing.assert_allclose(fused, A[l + 1], rtol=1e-12, atol=1e-15)
        Z_net, A_net = net.forward(X)
        np.testing.assert_allclose(A_net[-1], A[-1], rtol=1e-12)
        print("output activations A^L:")
        print(A[-1])
        """
    ),
    md(
        r"""
        ## 2. Cost

        The cost of one sample with the mean squared error is
        $c = \tfrac12 \sum_j (a^L_j - y_j)^2$, and the cost of a batch is the mean of the
        per-sample costs,

        $$ C = \frac1n \sum_{i=1}^n c_i . $$

        numbanet writes the batch cost as a weighted sum $C = \sum_i w_i c_i$ with *row
        weights* $w_i$: $w_i = 1/n$ gives the mean.  (With sample weights $s_i$ it is
        $w_i = s_i / \sum_k s_k$; section 6 comes back to this.)

        | equation | kernel |
        | --- | --- |
        | $C = \sum_i w_i c_i$ | `losses.batch_cost(A, Y, loss, row_weight, fns)` |
        | $c_i$ of one row | the same kernel on that row with weight 1: `losses.batch_cost(A[i:i+1], Y[i:i+1], loss, np.ones(1), fns)` |

        For MSE the per-sample costs are also one line of NumPy,
        `0.5 * ((A - Y) ** 2).sum(axis=1)`; the kernel computes the same sum row by row,
        accumulating in float64.
        """
    ),
    code(
        """
        one = np.ones(1)
        c = np.array([losses.batch_cost(A[-1][i:i + 1], Y[i:i + 1], losses.MSE, one, fns) for i in range(n)])
        w = np.full(n, 1.0 / n)                                   # row weights of a plain mean
        C = losses.batch_cost(A[-1], Y, losses.MSE, w, fns)

        np.testing.assert_allclose(c, 0.5 * ((A[-1] - Y) ** 2).sum(axis=1), rtol=1e-12)   # the NumPy formula

        c_textbook = [ref.cost("mse", column(A[-1][i]), column(Y[i])) for i in range(n)]
        np.testing.assert_allclose(c, c_textbook, rtol=1e-12)
        np.testing.assert_allclose(C, np.mean(c), rtol=1e-12)
        np.testing.assert_allclose(C, ref.total_cost(weights, biases, names, "mse", X, Y), rtol=1e-12)
        np.testing.assert_allclose(C, net.loss(X, Y), rtol=1e-12)
        print(f"per-sample costs {c}\\nbatch cost C = {C:.6f}")
        """
    ),
    md(
        r"""
        ## 3. Output delta

        Define the *error* of layer $l$ as the derivative of the cost with respect to
        the layer's pre-activations, $\delta^l = \partial c / \partial z^l$.  At the
        output $a^L = \sigma_L(z^L)$ and each $a^L_j$ depends only on $z^L_j$ (for an
        element-wise activation), so the chain rule gives

        $$ \delta^L = \nabla_{a^L} c \odot \sigma_L'(z^L), \qquad
           \nabla_{a^L} c = a^L - y \ \text{(MSE)}, \qquad \sigma'(z) = \sigma(z)\,(1 - \sigma(z)) \ \text{(sigmoid)}. $$

        Every activation is a pair of scalar functions side by side in
        `numbanet.kernels.activations`: `sigmoid(z)` is $\sigma(z)$ and `sigmoid_slope(z, a)`
        is $\sigma'(z)$, given both $z$ and $a = \sigma(z)$ so that each derivative is
        written in its cheapest stable form.  For sigmoid, tanh, the ReLUs, ELU and softplus
        that form uses only $a$ (here $\sigma'(z) = a(1-a)$), so for those hidden layers
        training does not store $Z$; GELU, SiLU and custom activations need $z$ itself
        (`activations.needs_z(code)`), and for those layers the training loop keeps $Z$.
        In batch form each row is scaled by its row weight: row $i$ of
        $\Delta^L$ is $w_i\,\delta^L_i$, which is exactly $\partial C / \partial Z^L$.

        | equation | kernel |
        | --- | --- |
        | $\nabla_{a} c$ | `losses.cost_gradient(A, Y, loss, fns, out)` |
        | $\sigma(z)$, $\sigma'(z)$ of one value | `activations.sigmoid(z)`, `activations.sigmoid_slope(z, a)` (any code: `activations.value(code, z, k, fns)`, `activations.slope(code, z, a, k, fns)`) |
        | $D \leftarrow D \odot \sigma'(Z)$ | `activations.backprop_inplace(D, A, Z, code, k, fns, a_scale)` (`a_scale = 1`; pass `Z = A` when $\sigma'$ comes from $a$) |
        | $\Delta^L = \operatorname{diag}(w)\,(\nabla_a c \odot \sigma'(Z^L))$ | `losses.output_delta(A, Z, Y, loss, code, k, fns, row_weight, out)` |
        """
    ),
    code(
        """
        grad_a = np.empty_like(A[-1])
        losses.cost_gradient(A[-1], Y, losses.MSE, fns, grad_a)     # ∂c/∂a = a - y
        delta_L = grad_a.copy()
        act.backprop_inplace(delta_L, A[-1], Z[-1], codes[-1], K, fns, 1.0)   # ∂c/∂a ⊙ σ'(z), one row per sample

        # The sigmoid's scalar pair, element by element: σ(z) = a and σ'(z) = a (1 - a).
        np.testing.assert_allclose(np.vectorize(act.sigmoid)(Z[-1]), A[-1], rtol=1e-15)
        sigma_prime = np.vectorize(act.sigmoid_slope)(Z[-1], A[-1])
        np.testing.assert_allclose(sigma_prime, A[-1] * (1 - A[-1]), rtol=1e-15)
        np.testing.assert_allclose(delta_L, grad_a * sigma_prime, rtol=1e-15)

        Delta_L = np.empty_like(A[-1])
        losses.output_delta(A[-1], Z[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta_L)
        np.testing.assert_allclose(Delta_L, delta_L / n, rtol=1e-12)

        # Textbook, per sample: δ^L = ∂c/∂a ⊙ σ'(z^L)
        for i in range(n):
            zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
            d = ref.cost_derivative("mse", as_[-1], column(Y[i])) * ref.sigmoid_prime(zs[-1])
            np.testing.assert_allclose(delta_L[i], d.ravel(), rtol=1e-10)

        # Finite differences: Δ^L is the derivative of the batch cost C with respect to Z^L.
        def cost_of_output_z(ZL):
            return np.mean([ref.cost("mse", column(ref.sigmoid(ZL[i])), column(Y[i])) for i in range(n)])

        numeric = numeric_grad(cost_of_output_z, Z[-1].copy())
        np.testing.assert_allclose(Delta_L, numeric, rtol=1e-6, atol=1e-10)
        print("Δ^L (rows already carry 1/n):")
        print(Delta_L)
        """
    ),
    md(
        r"""
        ## 4. Backward recursion

        $z^{l+1} = W^{l+1} a^l + b^{l+1}$ depends on $z^l$ only through $a^l = \sigma_l(z^l)$,
        so $\partial z^{l+1}_k / \partial z^l_j = W^{l+1}_{kj}\,\sigma_l'(z^l_j)$ and the
        chain rule, summed over the units $k$ of layer $l+1$, gives

        $$ \delta^l = \big( (W^{l+1})^{\mathsf T} \delta^{l+1} \big) \odot \sigma_l'(z^l),
           \qquad l = L-1, \dots, 2 . $$

        In batch form (rows are samples, so the transpose moves):
        $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$.  The row weights ride along
        unchanged, because the recursion is linear in $\Delta^{l+1}$.

        | equation | kernel |
        | --- | --- |
        | $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$ | `dense.hidden_delta(Delta_next, W_next, A, Z, code, k, fns, a_scale, out)` |

        `a_scale` is 1 here; with dropout, training stores the activations times
        $1/(1-p)$ and passes `a_scale` $= 1 - p$ to undo that inside $\sigma'$.

        For a single sample the bias gradient *is* the delta ($\partial c/\partial b^l = \delta^l$),
        so `ref.backprop`'s bias gradients give the textbook deltas to compare with.
        """
    ),
    code(
        """
        Delta = [None] * L
        Delta[-1] = Delta_L
        for l in range(L - 2, -1, -1):
            Delta[l] = np.empty_like(A[l + 1])
            dense.hidden_delta(Delta[l + 1], net.weights[l + 1], A[l + 1], Z[l], codes[l], K, fns, 1.0, Delta[l])

        # Textbook deltas, one sample at a time (rows of Δ carry 1/n).
        for i in range(n):
            _, nabla_b = ref.backprop(weights, biases, names, "mse", column(X[i]), column(Y[i]))
            for l in range(L):
                np.testing.assert_allclose(n * Delta[l][i], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)


        # Finite differences: Δ^l = ∂C/∂Z^l, perturbing Z^l and running the rest of the network.
        def cost_from(l, Zl):
            a = ref.ACTIVATIONS[names[l]][0](Zl)
            for k in range(l + 1, L):
                a = ref.ACTIVATIONS[names[k]][0](a @ net.weights[k].T + net.biases[k])
            return np.mean([ref.cost("mse", column(a[i]), column(Y[i])) for i in range(n)])


        for l in range(L):
            numeric = numeric_grad(lambda Zl: cost_from(l, Zl), Z[l].copy())
            np.testing.assert_allclose(Delta[l], numeric, rtol=1e-6, atol=1e-10)
            print(f"layer {l + 2}: |Δ - numeric| <= {np.abs(Delta[l] - numeric).max():.1e}")
        """
    ),
    md(
        r"""
        ## 5. Parameter gradients

        $z^l_j = \sum_k W^l_{jk} a^{l-1}_k + b^l_j$, so $\partial z^l_j / \partial W^l_{jk} = a^{l-1}_k$
        and $\partial z^l_j / \partial b^l_j = 1$:

        $$ \frac{\partial c}{\partial W^l} = \delta^l (a^{l-1})^{\mathsf T}, \qquad
           \frac{\partial c}{\partial b^l} = \delta^l . $$

        Summed over the rows of a batch whose deltas carry the weights $w_i = 1/n$ these
        become the batch means

        $$ \frac{\partial C}{\partial W^l} = (\Delta^l)^{\mathsf T} A^{l-1}, \qquad
           \frac{\partial C}{\partial b^l} = \textstyle\sum_{\text{rows}} \Delta^l
           \qquad\Big(= \tfrac1n \sum_i \delta^l_i (a^{l-1}_i)^{\mathsf T} \text{ and } \tfrac1n \sum_i \delta^l_i\Big). $$

        | equation | kernel |
        | --- | --- |
        | $dW = \Delta^{\mathsf T} A_{prev}$, $db = \sum_{rows} \Delta$ | `dense.layer_gradients(Delta, A_prev, dW, db)` |
        """
    ),
    code(
        """
        dW = [np.empty_like(W) for W in net.weights]
        db = [np.empty_like(b) for b in net.biases]
        for l in range(L):
            dense.layer_gradients(Delta[l], A[l], dW[l], db[l])

        nabla_w, nabla_b = ref.batch_gradients(weights, biases, names, "mse", X, Y)   # mean of per-sample gradients
        dW_net, db_net = net.gradients(X, Y)                                           # the training loop's kernels
        for l in range(L):
            np.testing.assert_allclose(dW[l], nabla_w[l], rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(db[l], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(dW_net[l], dW[l], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(db_net[l], db[l], rtol=1e-12, atol=1e-15)

        # Finite differences of net.loss, perturbing the network's live weight and bias arrays in place.
        for l in range(L):
            num_W = numeric_grad(lambda _: net.loss(X, Y), net.weights[l])
            num_b = numeric_grad(lambda _: net.loss(X, Y), net.biases[l])
            np.testing.assert_allclose(dW[l], num_W, rtol=1e-6, atol=1e-10)
            np.testing.assert_allclose(db[l], num_b, rtol=1e-6, atol=1e-10)
        # numeric_grad put every entry back exactly: the network still equals its textbook copy.
        np.testing.assert_array_equal(
            net.params, np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(weights, biases)])
        )
        print("∂C/∂W for the output layer:")
        print(dW[-1])
        """
    ),
    md(
        r"""
        ## 6. Averaging over the mini-batch

        The gradient of a batch is the **mean of the per-sample gradients**: each sample
        contributes the outer product $\delta_i (a_i)^{\mathsf T}$, and the kernels get the
        mean for free because the $1/n$ sits in the rows of $\Delta^L$ and is carried
        linearly through the recursion.  The same mechanism gives weighted means: with
        sample weights $s_i$ the rows carry $w_i = s_i / \sum_k s_k$ and the kernels need
        no other change.  A sample of weight 2 then counts exactly like a sample that
        appears twice.

        Below, the whole backward pass is assembled from the kernels once more, as a
        function of the row weights.
        """
    ),
    code(
        """
        def kernel_gradients(Z, A, Y, row_weight):
            '''Every layer's (dW, db) from the forward pass (Z, A), using only numbanet kernels.'''
            Delta = [np.empty_like(a) for a in A[1:]]
            losses.output_delta(A[-1], Z[-1], Y, losses.MSE, codes[-1], K, fns, row_weight, Delta[-1])
            for l in range(L - 2, -1, -1):
                dense.hidden_delta(Delta[l + 1], net.weights[l + 1], A[l + 1], Z[l], codes[l], K, fns, 1.0, Delta[l])
            dW = [np.empty_like(W) for W in net.weights]
            db = [np.empty_like(b) for b in net.biases]
            for l in range(L):
                dense.layer_gradients(Delta[l], A[l], dW[l], db[l])
            return dW, db


        per_sample = [ref.backprop(weights, biases, names, "mse", column(X[i]), column(Y[i])) for i in range(n)]

        # Plain mean: w_i = 1/n.
        dW_mean, db_mean = kernel_gradients(Z, A, Y, np.full(n, 1.0 / n))
        for l in range(L):
            np.testing.assert_allclose(dW_mean[l], np.mean([g[0][l] for g in per_sample], axis=0), rtol=1e-10)

        # Weighted mean: w_i = s_i / Σ s.
        s = np.array([1.0, 2.0, 0.0, 0.5, 1.0, 3.0])
        dW_s, db_s = kernel_gradients(Z, A, Y, s / s.sum())
        dW_net, db_net = net.gradients(X, Y, sample_weight=s)
        for l in range(L):
            expected = sum(s[i] * per_sample[i][0][l] for i in range(n)) / s.sum()
            np.testing.assert_allclose(dW_s[l], expected, rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(dW_net[l], dW_s[l], rtol=1e-10, atol=1e-15)

        # Weight 2 is the same as repeating the sample; weight 0 the same as leaving it out.
        s_int = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 3.0])
        rows = np.repeat(np.arange(n), s_int.astype(int))   # [0, 1, 1, 3, 4, 5, 5, 5]
        dW_rep, _ = net.gradients(X[rows], Y[rows])
        dW_w, _ = net.gradients(X, Y, sample_weight=s_int)
        for l in range(L):
            np.testing.assert_allclose(dW_w[l], dW_rep[l], rtol=1e-10, atol=1e-15)
        print("mean, weighted mean and repetition all agree")
        """
    ),
    md(
        r"""
        ## 7. The gradient-descent step

        Plain mini-batch gradient descent moves every parameter against its gradient,

        $$ W^l \leftarrow W^l - \eta\, \frac{\partial C}{\partial W^l}, \qquad
           b^l \leftarrow b^l - \eta\, \frac{\partial C}{\partial b^l} . $$

        All of a network's parameters live in one flat vector `net.params` ($W^2$ row by
        row, then $b^2$, then $W^3$, ...), of which `net.weights[l]` and `net.biases[l]`
        are views; so one kernel call updates every parameter.

        | equation | kernel |
        | --- | --- |
        | $\theta \leftarrow \theta - \eta\, g$ | `updates.sgd_step(theta, grad, lr)` |
        | momentum, Nesterov, Adam, AdamW, RMSprop | `updates.update(code, theta, grad, state, hyper, lr, t)` |

        To first order the step lowers the cost by $\eta \lVert g \rVert^2$.
        """
    ),
    code(
        """
        eta = 0.5
        flat_grad = np.concatenate([np.concatenate([dW[l].ravel(), db[l]]) for l in range(L)])
        theta = net.params.copy()
        updates.sgd_step(theta, flat_grad, eta)

        new_w, new_b = ref.update_mini_batch(weights, biases, names, "mse", X, Y, eta)
        np.testing.assert_allclose(theta, np.concatenate(
            [np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(new_w, new_b)]), rtol=1e-12)

        # Network.partial_fit takes exactly this step (one SGD step on the whole batch).
        stepped = net.copy()
        stepped.partial_fit(X, Y, optimizer=numbanet.SGD(lr=eta))
        np.testing.assert_allclose(stepped.params, theta, rtol=1e-12)

        # First-order decrease for a small step.
        small = net.copy()
        small.params[...] -= 1e-4 * flat_grad
        predicted = 1e-4 * flat_grad @ flat_grad
        actual = net.loss(X, Y) - small.loss(X, Y)
        np.testing.assert_allclose(actual, predicted, rtol=1e-3)
        print(f"C before {net.loss(X, Y):.6f}, after one step of η={eta}: {stepped.loss(X, Y):.6f}")
        """
    ),
    md(
        r"""
        Putting the pieces together gives the training loop.  Below, 60 steps of gradient
        descent (η = 2) on the batch are taken twice: with the kernels above, and with
        the textbook's `update_mini_batch`.  The two loss curves coincide.

        Like the training loop, this one uses the fused `dense.forward`, which keeps only
        the activations.  That is enough here because tanh and sigmoid take $\sigma'$ from
        $a$: where a kernel asks for `Z` it is given `A`, which it does not read.
        """
    ),
    code(
        """
        eta = 2.0
        assert not any(act.needs_z(code) for code in codes)         # σ' from a alone: Z need not be kept
        trained = net.copy()
        wt, bt = weights, biases
        kernel_curve, textbook_curve = [], []
        for step in range(60):
            As = [X]
            for l in range(L):
                out = np.empty((n, sizes[l + 1]))
                dense.forward(As[l], trained.weights[l], trained.biases[l], codes[l], K, fns, out)
                As.append(out)
            kernel_curve.append(losses.batch_cost(As[-1], Y, losses.MSE, w, fns))
            Delta = [np.empty_like(a) for a in As[1:]]
            losses.output_delta(As[-1], As[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta[-1])      # Z = A
            for l in range(L - 2, -1, -1):
                dense.hidden_delta(Delta[l + 1], trained.weights[l + 1], As[l + 1], As[l + 1], codes[l], K, fns, 1.0,
                                   Delta[l])                                                       # Z = A
            grad = np.empty_like(trained.params)
            pos = 0
            for l in range(L):
                dWl = grad[pos:pos + trained.weights[l].size].reshape(trained.weights[l].shape)
                pos += dWl.size
                dbl = grad[pos:pos + trained.biases[l].size]
                pos += dbl.size
                dense.layer_gradients(Delta[l], As[l], dWl, dbl)
            updates.sgd_step(trained.params, grad, eta)

            textbook_curve.append(ref.total_cost(wt, bt, names, "mse", X, Y))
            wt, bt = ref.update_mini_batch(wt, bt, names, "mse", X, Y, eta)

        np.testing.assert_allclose(kernel_curve, textbook_curve, rtol=1e-9)
        assert kernel_curve[-1] < 0.5 * kernel_curve[0]

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(textbook_curve, lw=4, alpha=0.4, label="textbook (numbanet.reference)")
        ax.plot(kernel_curve, "k--", lw=1.5, label="numbanet kernels")
        ax.set(xlabel="gradient-descent step", ylabel="batch cost C", title="The same descent, twice")
        ax.legend()
        plt.show()
        """
    ),
    md(
        r"""
        ## 8. Softmax with cross-entropy: the simplified output delta

        A softmax output couples a row: $a_j = e^{z_j} / \sum_k e^{z_k}$ has the Jacobian
        $\partial a_j / \partial z_k = a_j(\mathbb 1_{jk} - a_k)$.  With the cross-entropy
        $c = -\sum_j y_j \log a_j$ the chain rule $\delta = J^{\mathsf T} \nabla_a c$ collapses:

        $$ \delta_k = \sum_j a_j(\mathbb 1_{jk} - a_k)\Big(-\frac{y_j}{a_j}\Big)
                    = a_k \sum_j y_j - y_k = a_k - y_k \quad\text{when } \textstyle\sum_j y_j = 1. $$

        numbanet computes it in this simplified form (`losses.output_delta_simplified`,
        chosen by `losses.output_delta` for this pair and for sigmoid with binary
        cross-entropy).  It is not only shorter; it is the *stable* way: the chain form
        divides by $a_j$, which can underflow to 0.

        For the same two pairs the *cost* is computed from the logits $z$ rather than
        from $a$.  For softmax with cross-entropy it is
        $c = \sum_j y_j\,(\operatorname{lse}(z) - z_j)$ with
        $\operatorname{lse}(z) = \log \sum_k e^{z_k}$ (computed with the row maximum
        subtracted), which never takes the logarithm of an underflowed probability;
        sigmoid with binary cross-entropy has a similar form.

        | equation | kernel |
        | --- | --- |
        | $\Delta^L = \operatorname{diag}(w)(A^L - Y)$ | `losses.output_delta_simplified(A, Y, loss, row_weight, out)` |
        | the general chain rule | `losses.output_delta_chain(A, Z, Y, loss, code, k, fns, row_weight, out)` |
        | $C$ from the logits | `losses.batch_cost_logits(Z, Y, loss, row_weight)` |
        """
    ),
    code(
        """
        ce = numbanet.Network([3, 5, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=1)
        Yc = np.eye(3)[rng.integers(0, 3, size=n)]
        Zc, Ac = ce.forward(X)
        SOFTMAX = act.CODES["softmax"]

        simplified = np.empty_like(Ac[-1])
        losses.output_delta_simplified(Ac[-1], Yc, losses.CROSS_ENTROPY, w, simplified)
        chain = np.empty_like(Ac[-1])
        losses.output_delta_chain(Ac[-1], Zc[-1], Yc, losses.CROSS_ENTROPY, SOFTMAX, K, fns, w, chain)
        np.testing.assert_allclose(simplified, w[:, None] * (Ac[-1] - Yc), rtol=1e-12)
        np.testing.assert_allclose(chain, simplified, rtol=1e-9, atol=1e-15)

        # Both are ∂C/∂Z^L (finite differences through the textbook softmax and cost).
        def ce_cost_of_z(ZL):
            return np.mean([ref.cost("cross_entropy", ref.softmax(column(ZL[i])), column(Yc[i])) for i in range(n)])

        np.testing.assert_allclose(simplified, numeric_grad(ce_cost_of_z, Zc[-1].copy()), rtol=1e-6, atol=1e-10)

        # The cost from the logits is the cost from the probabilities, and what Network.loss reports.
        C_ce = losses.batch_cost_logits(Zc[-1], Yc, losses.CROSS_ENTROPY, w)
        np.testing.assert_allclose(C_ce, losses.batch_cost(Ac[-1], Yc, losses.CROSS_ENTROPY, w, fns), rtol=1e-12)
        np.testing.assert_allclose(C_ce, ce.loss(X, Yc), rtol=1e-12)

        # A confident wrong answer: the true class has probability e^-800, which underflows to 0.
        Z_bad = np.array([[800.0, 0.0, 0.0]])
        A_bad = np.empty_like(Z_bad)
        act.activate(Z_bad, SOFTMAX, K, fns, A_bad)
        np.testing.assert_array_equal(A_bad, [[1.0, 0.0, 0.0]])
        Y_bad = np.array([[0.0, 1.0, 0.0]])
        one = np.ones(1)
        stable, unstable = np.empty((1, 3)), np.empty((1, 3))
        losses.output_delta_simplified(A_bad, Y_bad, losses.CROSS_ENTROPY, one, stable)
        losses.output_delta_chain(A_bad, Z_bad, Y_bad, losses.CROSS_ENTROPY, SOFTMAX, K, fns, one, unstable)
        print("exact a - y :", stable.ravel())
        print("chain rule  :", unstable.ravel(), " <- the gradient vanished")
        np.testing.assert_array_equal(stable, A_bad - Y_bad)
        assert not np.allclose(unstable, A_bad - Y_bad)

        # The same for the cost: log(a) stops at log of the smallest normal float, the logits do not.
        from_a = losses.batch_cost(A_bad, Y_bad, losses.CROSS_ENTROPY, one, fns)
        from_z = losses.batch_cost_logits(Z_bad, Y_bad, losses.CROSS_ENTROPY, one)
        print(f"cost from a: {from_a:.2f} (clipped),  from the logits: {from_z:.2f} (exact)")
        np.testing.assert_allclose(from_z, 800.0, rtol=1e-12)
        assert from_a < 710
        """
    ),
    md(
        r"""
        ## 9. How small should the finite-difference step be?

        Every check above used central differences with $\varepsilon = 10^{-6}$.  The
        central difference $\big(C(\theta+\varepsilon) - C(\theta-\varepsilon)\big) / 2\varepsilon$
        has a truncation error of order $\varepsilon^2$ and a rounding error of order
        $u/\varepsilon$ ($u \approx 10^{-16}$ in float64); the one-sided difference has
        truncation error of order $\varepsilon$.  Their sum is smallest near
        $\varepsilon \approx u^{1/3} \approx 10^{-5}$ for the central difference, which is
        why `numbanet.gradcheck` uses $10^{-5}$ and float64.
        """
    ),
    code(
        """
        l, j, k = 0, 1, 2
        exact = dW[l][j, k]
        W0 = net.weights[l]
        original = W0[j, k]
        epsilons = np.logspace(-12, -1, 45)
        central, forward_err = [], []
        base = net.loss(X, Y)
        for eps in epsilons:
            W0[j, k] = original + eps
            plus = net.loss(X, Y)
            W0[j, k] = original - eps
            minus = net.loss(X, Y)
            W0[j, k] = original
            central.append(abs((plus - minus) / (2 * eps) - exact))
            forward_err.append(abs((plus - base) / eps - exact))
        assert W0[j, k] == original
        central, forward_err = np.maximum(central, 1e-17), np.maximum(forward_err, 1e-17)
        assert central[np.argmin(np.abs(epsilons - 1e-5))] < 1e-8 * max(1.0, abs(exact))

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.loglog(epsilons, central, "o-", ms=3, label="central difference")
        ax.loglog(epsilons, forward_err, "s-", ms=3, label="forward difference")
        ax.axvline(1e-5, color="grey", ls=":", label="gradcheck's default ε")
        ax.set(xlabel="ε", ylabel="|numeric − analytic|", title=f"Error of ∂C/∂W[{l}][{j},{k}]")
        ax.legend()
        plt.show()
        """
    ),
    md(
        r"""
        ## Summary

        | step | equation | kernel |
        | --- | --- | --- |
        | forward | $Z^l = A^{l-1}(W^l)^{\mathsf T} + b^l$, $A^l = \sigma_l(Z^l)$ | `dense.forward` (`dense.linear` + `activations.activate`) |
        | cost | $C = \sum_i w_i c_i$ | `losses.batch_cost` (from the logits for the natural pairs: `losses.batch_cost_logits`) |
        | output delta | $\Delta^L = \operatorname{diag}(w)\,\nabla_a c \odot \sigma'(Z^L)$, or $\operatorname{diag}(w)(A^L - Y)$ | `losses.output_delta` (`cost_gradient` + `activations.backprop_inplace`, or `output_delta_simplified`) |
        | backward | $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$ | `dense.hidden_delta` |
        | gradients | $\partial C/\partial W^l = (\Delta^l)^{\mathsf T} A^{l-1}$, $\partial C/\partial b^l = \sum_{rows} \Delta^l$ | `dense.layer_gradients` |
        | step | $\theta \leftarrow \theta - \eta\, g$ | `updates.sgd_step` / `updates.update` |

        `numbanet.kernels.training.train_slice(model, data, work, run, max_batches, stop_at_epoch_end)`
        runs exactly these kernels for every mini-batch (the network, data, work buffer
        and training run travel as named bundles: `Model`, `Data`, `Work`, `Run`), many
        mini-batches (and epochs) per compiled call, returning to Python about every 50 ms
        so that Ctrl-C and progress bars are served.
        """
    ),
]

# ----------------------------------------------------------------------------
# 02 -- digits
# ----------------------------------------------------------------------------

DIGITS = [
    md(
        """
        # Handwritten digits

        scikit-learn ships 1797 handwritten digits of 8×8 pixels (16 grey levels), a
        small cousin of MNIST.  This notebook trains a numbanet network on them, plots
        the training and validation loss, looks at the mistakes, and compares
        activation functions and optimizers.  Everything runs in a few seconds.
        """
    ),
    code(
        """
        %matplotlib inline
        import time

        import matplotlib.pyplot as plt
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        import numbanet

        digits = load_digits()
        X = digits.data / 16.0                       # pixels in [0, 1]
        y = digits.target
        Y = np.eye(10)[y]                            # one-hot targets for the softmax output

        X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
        X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.2, stratify=y_rest,
                                                          random_state=0)
        Y_train, Y_val, Y_test = np.eye(10)[y_train], np.eye(10)[y_val], np.eye(10)[y_test]
        print(f"train {X_train.shape}, validation {X_val.shape}, test {X_test.shape}")

        fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
        for ax, image, label in zip(axes.ravel(), X_train, y_train):
            ax.imshow(image.reshape(8, 8), cmap="gray_r")
            ax.set_title(label)
            ax.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## Training

        A 64–64–10 network: ReLU hidden units, a softmax output and the cross-entropy
        loss, trained with Adam on mini-batches of 32.  `validation_data` makes `fit`
        record the validation loss and accuracy after every epoch.
        """
    ),
    code(
        """
        net = numbanet.Network([64, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
        start = time.perf_counter()
        history = net.fit(X_train, Y_train, epochs=40, batch_size=32, optimizer=numbanet.Adam(lr=3e-3),
                          validation_data=(X_val, Y_val), progress=False)
        print(f"{len(history)} epochs in {time.perf_counter() - start:.2f} s; {history}")

        test_pred = net.predict(X_test).argmax(axis=1)
        test_accuracy = np.mean(test_pred == y_test)
        print(f"test accuracy {test_accuracy:.1%}")
        assert test_accuracy > 0.93
        """
    ),
    code(
        """
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        ax1.plot(history.epoch, history.loss, label="training")
        ax1.plot(history.epoch, history.val_loss, label="validation")
        ax1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss")
        ax1.legend()
        ax2.plot(history.epoch, history.val_accuracy, color="C2")
        ax2.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(0.8, 1.0))
        plt.show()
        """
    ),
    md(
        """
        The training loss keeps falling while the validation loss levels off: the network
        starts to memorise the training set.  `fit(..., early_stopping=5)` would stop
        there and restore the best weights.

        ## Confusion matrix

        Row = true digit, column = predicted digit, on the held-out test set.
        """
    ),
    code(
        """
        confusion = np.zeros((10, 10), dtype=int)
        np.add.at(confusion, (y_test, test_pred), 1)
        assert confusion.sum() == len(y_test) and np.trace(confusion) == np.sum(test_pred == y_test)

        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.imshow(confusion, cmap="Blues")
        for i in range(10):
            for j in range(10):
                if confusion[i, j]:
                    ax.text(j, i, confusion[i, j], ha="center", va="center",
                            color="white" if confusion[i, j] > confusion.max() / 2 else "black")
        ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
               title=f"Test set: {np.trace(confusion)} of {len(y_test)} right")
        plt.show()
        """
    ),
    md("## The mistakes"),
    code(
        """
        wrong = np.flatnonzero(test_pred != y_test)
        probabilities = net.predict(X_test)
        shown = wrong[:12]
        fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(1.2 * max(len(shown), 1), 1.8), squeeze=False)
        for ax, i in zip(axes[0], shown):
            ax.imshow(X_test[i].reshape(8, 8), cmap="gray_r")
            ax.set_title(f"{y_test[i]}→{test_pred[i]}\\n{probabilities[i, test_pred[i]]:.0%}", fontsize=9)
        for ax in axes[0]:
            ax.axis("off")
        fig.suptitle("misclassified test digits: true→predicted (confidence)", y=1.15)
        plt.show()
        """
    ),
    md(
        """
        ## Activation functions

        The same network and optimizer with sigmoid, tanh and ReLU hidden units
        (30 epochs each).  Initialisation follows the activation: Glorot for sigmoid and
        tanh, He for ReLU.
        """
    ),
    code(
        """
        def run(activation="relu", optimizer=None, epochs=30, seed=0):
            model = numbanet.Network([64, 64, 10], activations=[activation, "softmax"], loss="cross_entropy",
                                     seed=seed)
            h = model.fit(X_train, Y_train, epochs=epochs, batch_size=32,
                          optimizer=optimizer or numbanet.Adam(lr=3e-3),
                          validation_data=(X_val, Y_val), progress=False)
            return model, h


        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        final = {}
        for activation in ["sigmoid", "tanh", "relu"]:
            model, h = run(activation)
            final[activation] = h.val_accuracy[-1]
            ax1.plot(h.val_loss, label=activation)
            ax2.plot(h.val_accuracy, label=activation)
        ax1.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Adam, lr 3e-3")
        ax2.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0.7, 1.0))
        ax2.legend()
        plt.show()
        print({k: f"{v:.1%}" for k, v in final.items()})
        assert min(final.values()) > 0.9
        """
    ),
    md(
        """
        ## Optimizers

        Plain SGD, SGD with momentum 0.9, and Adam, all with ReLU hidden units.
        Momentum accumulates a velocity along consistent gradient directions; Adam also
        scales each parameter's step by a running estimate of its gradient's size.
        """
    ),
    code(
        """
        optimizers = {
            "SGD lr=0.05": numbanet.SGD(lr=0.05),
            "SGD lr=0.05 + momentum 0.9": numbanet.SGD(lr=0.05, momentum=0.9),
            "Adam lr=3e-3": numbanet.Adam(lr=3e-3),
        }
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        final = {}
        for name, optimizer in optimizers.items():
            model, h = run("relu", optimizer)
            final[name] = h.val_accuracy[-1]
            ax1.plot(h.loss, label=name)
            ax2.plot(h.val_loss, label=name)
        ax1.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
        ax2.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Validation loss")
        ax1.legend()
        plt.show()
        print({k: f"{v:.1%}" for k, v in final.items()})
        assert final["SGD lr=0.05 + momentum 0.9"] > 0.9 and final["Adam lr=3e-3"] > 0.9
        """
    ),
]

# ----------------------------------------------------------------------------
# 03 -- gradient verification
# ----------------------------------------------------------------------------

GRADCHECK = [
    md(
        """
        # Verifying gradients

        A backpropagation bug rarely crashes: the network still trains, only worse.  The
        reliable way to find one is to compare the analytic gradient with finite
        differences of the loss.  numbanet makes that a one-liner
        (`numbanet.gradcheck`) and ships Hypothesis strategies
        (`numbanet.testing`) to run it on many random networks and batches.
        """
    ),
    code(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        import numpy as np
        from hypothesis import given, settings
        from hypothesis import strategies as st

        import numbanet
        from numbanet.testing import batches, configurations, network_and_batch

        rng = np.random.default_rng(0)
        """
    ),
    md(
        """
        ## `gradcheck`

        `gradcheck(net, X, Y)` perturbs every parameter by ±ε, evaluates `net.loss` at
        both points and compares the central difference with `net.gradients`.  The
        result has `.passed`, error statistics, and a readable `.report`.
        """
    ),
    code(
        """
        net = numbanet.Network([4, 6, 5, 3], activations=["tanh", "sigmoid", "softmax"], loss="cross_entropy", seed=0)
        X = rng.normal(size=(8, 4))
        Y = np.eye(3)[rng.integers(0, 3, size=8)]
        result = numbanet.gradcheck(net, X, Y)
        print(result.report)
        assert result.passed and result.n_checked == net.n_params and result.n_kink == 0
        """
    ),
    md(
        """
        It covers everything that is part of the loss: sample weights and the L2 penalty
        too.  A float32 network is checked through a float64 copy of itself (finite
        differences in float32 would drown in rounding error).
        """
    ),
    code(
        """
        weighted = numbanet.Network([4, 7, 2], activations=["leaky_relu", "sigmoid"], loss="binary_cross_entropy",
                                    seed=3, l2=0.01, dtype=np.float32)
        Yb = rng.uniform(size=(8, 2))
        s = rng.uniform(0, 2, size=8)
        r = numbanet.gradcheck(weighted, X, Yb, sample_weight=s)
        print(r)
        assert r.passed
        """
    ),
    md(
        """
        ## Property-based testing with `numbanet.testing`

        One network is one example.  `numbanet.testing.network_and_batch()` is a
        [Hypothesis](https://hypothesis.readthedocs.io) strategy that draws a valid
        network (depth, widths, a hidden activation per layer, an output activation and
        a loss that go together, a seed) and a batch of finite, bounded data that fits
        it, with targets valid for the loss.  Below the property "gradients match
        finite differences" is checked on 20 drawn cases, exactly as it would be inside
        a pytest test file.  (`derandomize=True` and `database=None` make every run of the
        notebook draw the same cases and keep no failing examples between runs.)
        """
    ),
    code(
        """
        seen = []


        @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        @given(network_and_batch(max_depth=3, max_width=6, max_samples=6))
        def test_gradients_match_finite_differences(case):
            net, X, Y = case
            seen.append((list(net.sizes), net.activations, net.loss_name, X.shape[0]))
            result = numbanet.gradcheck(net, X, Y)
            assert result.passed, result.report


        test_gradients_match_finite_differences()
        print(f"{len(seen)} cases passed, for example:")
        for sizes, activations, loss, rows in seen[:8]:
            print(f"  {str(sizes):<16} {', '.join(activations):<36} {loss:<22} {rows} rows")
        assert len(seen) >= 20
        """
    ),
    md(
        """
        ## A planted bug

        Suppose a change to the backward pass corrupted a single gradient entry.
        Training would still converge, more or less.  `gradcheck` calls the network's
        own `gradients` and `loss` methods, so a subclass with the bug is checked as it
        behaves:
        """
    ),
    code(
        """
        class ShiftedGradient(numbanet.Network):
            '''A network whose gradient has one wrong entry: dW of layer 2, row 1, column 3.'''

            def gradients(self, X, Y, sample_weight=None):
                dW, db = super().gradients(X, Y, sample_weight)
                dW[1][1, 3] += 1e-3
                return dW, db


        buggy = ShiftedGradient([4, 6, 5, 3], activations=["tanh", "sigmoid", "softmax"], loss="cross_entropy", seed=0)
        r = numbanet.gradcheck(buggy, X, Y)
        print(r.report)
        assert not r.passed
        assert [(e.layer, e.param, e.index) for e in r.failures] == [(2, "W", (1, 3))]
        """
    ),
    md(
        """
        A subtler bug: summing the per-sample gradients instead of averaging them.
        With a batch of one sample the two agree, so a single hand-written test with one
        sample would miss it.  Hypothesis finds a failing case and *shrinks* it to a
        minimal one (two samples):
        """
    ),
    code(
        """
        class SumNotMean(numbanet.Network):
            '''Forgets to divide by the batch size.'''

            def gradients(self, X, Y, sample_weight=None):
                dW, db = super().gradients(X, Y, sample_weight)
                rows = np.shape(X)[0]
                return [rows * g for g in dW], [rows * g for g in db]


        @st.composite
        def buggy_cases(draw):
            sizes, activations, loss = draw(configurations(max_depth=2, max_width=4))
            model = SumNotMean(sizes, activations=activations, loss=loss, seed=draw(st.integers(0, 1000)))
            X, Y = draw(batches(model, max_samples=6))
            return model, X, Y


        failing = []


        @settings(max_examples=50, deadline=None, derandomize=True, database=None)
        @given(buggy_cases())
        def test_sum_not_mean(case):
            model, X, Y = case
            result = numbanet.gradcheck(model, X, Y)
            if not result.passed:
                failing.append(X.shape[0])
            assert result.passed, result.report


        try:
            test_sum_not_mean()
        except AssertionError as error:
            print("Hypothesis found the bug; the shrunk failing case's report:\\n")
            print(str(error).splitlines()[0])
            print("...")
        else:
            raise AssertionError("the planted bug was not found")
        print(f"\\nbatch sizes of the failing cases it saw: {sorted(set(failing))}; "
              f"the shrunk case has {failing[-1]} rows")
        assert failing[-1] == 2                     # Hypothesis re-runs the minimal failing case last
        """
    ),
    md(
        r"""
        ## The ReLU kink

        Finite differences assume the loss is smooth within ±ε.  A ReLU is not smooth at
        0: if a pre-activation sits exactly on the kink, the central difference averages
        the slopes on the two sides, while the analytic gradient uses one side
        (numbanet, like PyTorch, takes $\mathrm{relu}'(0) = 0$).  Neither is wrong, they
        just measure different things, so the comparison is meaningless there.

        Here is a 2–2–1 ReLU network whose first hidden unit receives exactly
        $z = 1 \cdot 1 + (-1) \cdot 1 + 0 = 0$ for the input $x = (1, 1)$:
        """
    ),
    code(
        """
        kinked = numbanet.Network([2, 2, 1], activations=["relu", "identity"], loss="mse", seed=0)
        kinked.weights[0][...] = [[1.0, -1.0], [0.5, 0.25]]
        kinked.biases[0][...] = [0.0, 0.1]
        kinked.weights[1][...] = [[2.0, -1.0]]
        kinked.biases[1][...] = [0.3]
        Xk = np.array([[1.0, 1.0]])
        Yk = np.array([[-1.0]])
        Z, A = kinked.forward(Xk)
        print("hidden pre-activations:", Z[0])
        assert Z[0][0, 0] == 0.0

        dW, db = kinked.gradients(Xk, Yk)
        eps = 1e-6
        b = kinked.biases[0]
        b[0] = eps
        plus = kinked.loss(Xk, Yk)
        b[0] = -eps
        minus = kinked.loss(Xk, Yk)
        b[0] = 0.0
        numeric = (plus - minus) / (2 * eps)
        print(f"∂C/∂b[0]: analytic {db[0][0]:+.6f}, central difference {numeric:+.6f}")
        assert db[0][0] == 0.0 and abs(numeric) > 0.1      # they disagree

        # The loss as a function of that bias: a corner at 0.
        t = np.linspace(-0.5, 0.5, 201)
        curve = []
        for value in t:
            b[0] = value
            curve.append(kinked.loss(Xk, Yk))
        b[0] = 0.0
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(t, curve)
        ax.plot([0], [kinked.loss(Xk, Yk)], "ko")
        ax.set(xlabel="b[0] of the hidden layer", ylabel="C", title="A corner at the ReLU kink")
        plt.show()
        """
    ),
    md(
        """
        `gradcheck` watches for exactly this: for every probe it runs the forward pass at
        both perturbed points, and when any ReLU-like unit changes sign between them it
        marks the entry as straddling a kink and leaves it out of the comparison -- and
        says so in the report, rather than silently passing or failing.
        """
    ),
    code(
        """
        r = numbanet.gradcheck(kinked, Xk, Yk)
        print(r.report)
        assert r.passed and r.n_kink == 3
        assert sorted((e.layer, e.param, e.index) for e in r.kinks) == [(1, "W", (0, 0)), (1, "W", (0, 1)), (1, "b", (0,))]

        # Moved off the kink by much more than ε, every entry is compared again.
        kinked.biases[0][0] = 1e-3
        r = numbanet.gradcheck(kinked, Xk, Yk)
        assert r.passed and r.n_kink == 0 and r.n_checked == kinked.n_params
        print("\\nwith b[0] = 1e-3:", repr(r))
        """
    ),
    md(
        """
        In property tests, keep pre-activations away from 0 for ReLU networks (or accept
        `n_kink > 0`): left alone, Hypothesis is very good at shrinking inputs to
        exactly 0, which is exactly the kink.
        """
    ),
]

# ----------------------------------------------------------------------------
# 04 -- performance
# ----------------------------------------------------------------------------

PERFORMANCE = [
    md(
        """
        # Performance

        How long does an epoch take, and how does that depend on the batch size?  If
        `benchmarks/results.json` exists (written by `python benchmarks/run.py --json
        benchmarks/results.json`), this notebook plots it: time per epoch against batch
        size for numbanet, hand-vectorised NumPy and PyTorch.  Otherwise it runs a
        small timing of its own -- numbanet against a plain NumPy MLP on the digits --
        so it always has something to show.  Timings depend on the machine; the ratios
        are what matter.
        """
    ),
    code(
        """
        %matplotlib inline
        import json
        import re
        import time
        from collections import defaultdict
        from pathlib import Path

        import matplotlib.pyplot as plt
        import numpy as np

        import numbanet

        candidates = [Path("benchmarks/results.json"), Path("../benchmarks/results.json")]
        results_path = next((p for p in candidates if p.is_file()), None)
        print("benchmark results:", results_path or "none found; timing in this notebook")
        """
    ),
    md(
        """
        ## Reading `benchmarks/results.json`

        `benchmarks/run.py --json` writes `{"machine": ..., "workloads": {name: {"title",
        "batch", "impls": {library: {"median": seconds, ...}}}}}`.  The workloads timed
        per epoch at several batch sizes (`mnist16`, `mnist64`, `mnist256`: a
        784-128-10 network on MNIST-shaped data) become one curve per library.
        Anything the reader cannot use is reported, and the notebook falls back to its
        own timing.
        """
    ),
    code(
        '''
        def read_results(path):
            """{workload: {library: [(batch_size, seconds_per_epoch), ...]}}, or None if unusable."""
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError) as error:
                print(f"cannot read {path}: {error}")
                return None
            workloads = data.get("workloads") if isinstance(data, dict) else None
            if not isinstance(workloads, dict):
                print(f"{path}: no 'workloads' table")
                return None
            table = defaultdict(lambda: defaultdict(list))
            for w in workloads.values():
                if not (isinstance(w, dict) and isinstance(w.get("batch"), int) and isinstance(w.get("impls"), dict)):
                    continue                                       # start-up, memory: not per epoch
                if "epoch" not in w.get("title", ""):
                    continue                                       # XOR is timed per step
                group = re.sub(r",? batch \\d+", "", w["title"])    # the same workload at another batch size
                for library, timing in w["impls"].items():
                    if isinstance(timing, dict) and isinstance(timing.get("median"), (int, float)):
                        table[group][library].append((w["batch"], float(timing["median"])))
            table = {g: dict(libs) for g, libs in table.items() if any(len(v) > 1 for v in libs.values())}
            if not table:
                print(f"{path}: no workload timed per epoch at two or more batch sizes")
                return None
            machine = data.get("machine", {})
            print(f"{path}: {machine.get('cpu', '?')}, {machine.get('logical_cpus', '?')} logical CPUs, "
                  f"{'quick' if data.get('quick') else 'full'} run")
            return table


        results = read_results(results_path) if results_path else None
        '''
    ),
    md(
        """
        ## Timing in the notebook (when there are no benchmark results)

        The workload: a 64–128–10 ReLU/softmax network on the 1797 digits, float32,
        plain SGD, one epoch.  The NumPy version is the usual hand-vectorised MLP: one
        matrix product per layer and direction, the bias and activation as array
        expressions.  First we make sure both compute the *same* epoch -- a timing
        comparison of different algorithms would be meaningless.
        """
    ),
    code(
        """
        from sklearn.datasets import load_digits

        X_all, y_all = load_digits(return_X_y=True)
        X_digits = (X_all / 16.0).astype(np.float32)
        Y_digits = np.eye(10, dtype=np.float32)[y_all]


        def numpy_epoch(W1, b1, W2, b2, X, Y, batch_size, lr):
            '''One epoch of mini-batch SGD for a ReLU/softmax MLP, in place, rows in order.'''
            for start in range(0, X.shape[0], batch_size):
                x, y = X[start:start + batch_size], Y[start:start + batch_size]
                z1 = x @ W1.T + b1
                a1 = np.maximum(z1, 0)
                z2 = a1 @ W2.T + b2
                e = np.exp(z2 - z2.max(axis=1, keepdims=True))
                a2 = e / e.sum(axis=1, keepdims=True)
                d2 = (a2 - y) / x.shape[0]
                d1 = (d2 @ W2) * (z1 > 0)
                W2 -= lr * (d2.T @ a1)
                b2 -= lr * d2.sum(axis=0)
                W1 -= lr * (d1.T @ x)
                b1 -= lr * d1.sum(axis=0)


        def make_net(dtype):
            return numbanet.Network([64, 128, 10], activations=["relu", "softmax"], loss="cross_entropy",
                                    dtype=dtype, seed=0)


        # The same epoch, in float64 so that the comparison can be strict.
        check = make_net(np.float64)
        W1, b1, W2, b2 = (p.copy() for p in (check.weights[0], check.biases[0], check.weights[1], check.biases[1]))
        X64, Y64 = X_digits.astype(np.float64), Y_digits.astype(np.float64)
        check.fit(X64, Y64, epochs=1, batch_size=32, optimizer=numbanet.SGD(lr=0.1), shuffle=False, progress=False)
        numpy_epoch(W1, b1, W2, b2, X64, Y64, 32, 0.1)
        for mine, theirs in zip((W1, b1, W2, b2), (check.weights[0], check.biases[0], check.weights[1], check.biases[1])):
            np.testing.assert_allclose(theirs, mine, rtol=1e-9, atol=1e-12)
        print("numbanet and the NumPy MLP take identical SGD epochs")
        """
    ),
    code(
        """
        def best_time(fn, repeat=5):
            fn()                                     # warm-up (and JIT compilation for numbanet)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return min(times)


        def time_here(batch_sizes=(8, 32, 128, 512), epochs=2):
            table = {"numbanet": [], "NumPy": []}
            for bs in batch_sizes:
                net = make_net(np.float32)
                sgd = numbanet.SGD(lr=0.01)
                t = best_time(lambda: net.fit(X_digits, Y_digits, epochs=epochs, batch_size=bs, optimizer=sgd,
                                              shuffle=False, progress=False))
                table["numbanet"].append((bs, t / epochs))
                params = [p.copy() for p in (net.weights[0], net.biases[0], net.weights[1], net.biases[1])]

                def numpy_run():
                    for _ in range(epochs):
                        numpy_epoch(*params, X_digits, Y_digits, bs, 0.01)

                table["NumPy"].append((bs, best_time(numpy_run) / epochs))
            return {"64-128-10 ReLU/softmax on 1797 digits, float32, SGD (timed in this notebook)": table}


        if results is None:
            results = time_here()
        for workload, libraries in results.items():
            print(workload)
            for library, rows in libraries.items():
                print(f"  {library:<12}", "  ".join(f"batch {b}: {1e3 * s:.2f} ms" for b, s in sorted(rows)))
        """
    ),
    md("## Time per epoch against batch size"),
    code(
        """
        from matplotlib.ticker import NullFormatter

        LABELS = {"numpy": "NumPy", "torch": "PyTorch", "sklearn": "scikit-learn"}
        n_plots = len(results)
        fig, axes = plt.subplots(1, n_plots, figsize=(6 * n_plots, 4), squeeze=False)
        for ax, (workload, libraries) in zip(axes[0], results.items()):
            for library, rows in sorted(libraries.items()):
                batch, seconds = zip(*sorted(rows))
                ax.loglog(batch, np.array(seconds) * 1e3, "o-", label=LABELS.get(library, library))
            sizes = sorted({b for rows in libraries.values() for b, _ in rows})
            ax.set_xticks(sizes, [str(b) for b in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set(xlabel="batch size", ylabel="time per epoch (ms)", title=workload)
            ax.title.set_fontsize(9)
            ax.legend()
        plt.show()

        # Speed-up of numbanet over each other library at each batch size.
        for workload, libraries in results.items():
            mine = {b: s for b, s in libraries.get("numbanet", [])}
            for library, rows in libraries.items():
                if library == "numbanet" or not mine:
                    continue
                ratios = {b: s / mine[b] for b, s in rows if b in mine}
                print(f"{workload}: numbanet vs {library}:",
                      "  ".join(f"batch {b}: {r:.1f}x" for b, r in sorted(ratios.items())))
        assert all(s > 0 and np.isfinite(s) for libs in results.values() for rows in libs.values() for _, s in rows)
        """
    ),
    md(
        """
        What to look for: a framework pays a fixed cost per operation (argument checks,
        dispatch, temporary arrays), and the smaller the batch, the larger that
        overhead's share of an epoch.  numbanet runs its mini-batches inside compiled
        calls (`numbanet.kernels.training.train_slice`: many mini-batches per call,
        returning to Python about every 50 ms), fusing the bias, activation and
        derivative into single passes and writing into preallocated buffers.  With large batches the matrix products dominate and
        every library ends up waiting on a BLAS, so the curves draw together.  On a
        busy machine the numbers jump around; `benchmarks/run.py` interleaves its
        rounds and reports medians to cope with that.
        """
    ),
]

# ----------------------------------------------------------------------------
# 05 -- your own activations and losses
# ----------------------------------------------------------------------------

CUSTOM = [
    md(
        r"""
        # Your own activations and losses

        Besides its built-in activations and losses, numbanet trains networks with pieces
        you write yourself: a `numbanet.Activation` is a scalar function $\sigma(z)$ with its
        derivative $\sigma'(z)$, a `numbanet.Loss` a per-output cost $c(a, y)$ with its
        derivative $\partial c / \partial a$.  This notebook defines one of each, checks
        their derivatives (and watches the checks catch a planted mistake), trains with
        them, compares them with the new built-in activations, and saves and reloads a
        network that uses them.  The mathematics is in
        [docs/derivation.md, "Your own activations and losses"](../docs/derivation.md#your-own-activations-and-losses).
        """
    ),
    code(
        """
        import math
        import pickle
        import tempfile
        from pathlib import Path

        import matplotlib.pyplot as plt
        import numpy as np

        import numbanet
        from numbanet.kernels import activations as act
        from numbanet.kernels.pieces import builtin_fns
        from numbanet.testing import check_activation, check_loss

        swish = numbanet.Activation(
            "swish",
            function=lambda z: z / (1.0 + math.exp(-z)),
            derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
        )
        log_cosh = numbanet.Loss(
            "log_cosh",
            cost=lambda a, y: math.log(math.cosh(a - y)),
            derivative=lambda a, y: math.tanh(a - y),
        )
        swish, log_cosh
        """
    ),
    md(
        r"""
        ## The contract

        * **An activation** is two functions of one float returning a float: $\sigma(z)$
          and $\sigma'(z)$.  It acts element-wise, $a_j = \sigma(z_j)$.  Unlike most
          built-ins, whose $\sigma'$ is computed from $a = \sigma(z)$, a custom $\sigma'$ is
          always evaluated at $z$ (numbanet cannot know how to write it in terms of
          $a$), so training keeps that layer's pre-activations.  Layers with a custom
          activation get Glorot-uniform initial weights.
        * **A loss** is two functions of two floats: the cost $c(a, y)$ of *one* output $a$
          and its target $y$, and $\partial c / \partial a$.  The cost of a sample is the sum
          over its outputs, $c = \sum_j c(a^L_j, y_j)$, and the cost of a batch the
          (weighted) mean over samples, $C = \sum_i w_i c_i$, as for every built-in loss.
        * **The output delta** is the general chain rule,
          $\delta^L = \nabla_{a^L} c \odot \sigma_L'(z^L)$ (for a softmax output its
          Jacobian times $\nabla_{a^L} c$), with $\nabla_{a^L} c$ from your loss and
          $\sigma_L'$ from the output activation.  There is no simplified form as for
          softmax with cross-entropy, and the cost is computed from $a^L$.  Everything
          else -- hidden deltas, parameter gradients, L2, dropout, optimizers -- is
          unchanged.

        The functions are compiled by Numba when the piece is made (a function Numba
        cannot compile is refused right there, with Numba's reason), and reach the
        kernels as C callbacks in the `fns` bundle that every kernel takes
        (`numbanet.kernels.pieces`), so the kernels themselves are never recompiled.

        A quick look at both, through a network's forward pass and loss:
        """
    ),
    code(
        """
        rng = np.random.default_rng(0)
        X = rng.uniform(-2, 2, size=(8, 1))
        Y = np.sin(2 * X)
        net = numbanet.Network([1, 16, 1], activations=[swish, "identity"], loss=log_cosh, seed=0)
        print(net)

        Z, A = net.forward(X)
        np.testing.assert_allclose(A[1], Z[0] / (1 + np.exp(-Z[0])), rtol=1e-13)        # σ(z) = z / (1 + e^-z)
        np.testing.assert_allclose(net.loss(X, Y), np.mean(np.sum(np.log(np.cosh(A[2] - Y)), axis=1)), rtol=1e-13)
        print(f"hidden activations follow swish, and the loss is the mean log-cosh: {net.loss(X, Y):.6f}")
        """
    ),
    md(
        r"""
        ## Checking the derivatives

        The derivative you give is *trusted*, not derived: if it is not the derivative of
        your function, training follows a wrong gradient and no error is raised.  So
        check it.  `numbanet.testing.check_activation` compares $\sigma'$ with central
        differences of $\sigma$ at a few hundred points of $[-20, 20]$ (a seeded
        Hypothesis property: 0, the ends, small round values and points spread across
        the range); `check_loss` does the same for $\partial c/\partial a$ over pairs
        $(a, y)$.  Each returns `None` when the derivative agrees and raises an
        `AssertionError` naming the point where it does not.  `numbanet.gradcheck`
        then checks the whole network's gradient, as in notebook 03.
        """
    ),
    code(
        """
        check_activation(swish)
        check_loss(log_cosh)
        result = numbanet.gradcheck(net, X, Y)
        print(result.report)
        assert result.passed and result.n_checked == net.n_params
        """
    ),
    md(
        r"""
        ### A planted mistake

        By the quotient rule $\sigma'(z) = \big(1 + e^{-z} + z e^{-z}\big) / (1 + e^{-z})^2$.
        Forget the $z e^{-z}$ term and the result still looks plausible -- it is the
        sigmoid, positive, 1/2 at $z = 0$ -- and a network still trains with it.
        Both checks catch it:
        """
    ),
    code(
        """
        swish_typo = numbanet.Activation(
            "swish",
            function=lambda z: z / (1.0 + math.exp(-z)),
            derivative=lambda z: (1.0 + math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,     # z·exp(-z) missing
        )

        caught = None
        try:
            check_activation(swish_typo)
        except AssertionError as error:
            caught = error
            print("check_activation:", error)
        assert caught is not None, "check_activation missed the planted mistake"

        typo_net = numbanet.Network([1, 16, 1], activations=[swish_typo, "identity"], loss=log_cosh, seed=0)
        typo_result = numbanet.gradcheck(typo_net, X, Y)
        print()
        print(typo_result.report)
        assert not typo_result.passed
        """
    ),
    md(
        r"""
        ## A robust fit: log-cosh against mean squared error

        $\log\cosh(d)$ is $\tfrac12 d^2$ near 0 and $|d| - \log 2$ far out: like the
        built-in `huber`, quadratic for small residuals and linear for large ones, but
        smooth everywhere.  Its derivative $\tanh(d)$ never exceeds 1, so a few wild
        targets cannot pull the fit as hard as they do under the squared error, whose
        derivative $d$ grows with the residual.

        The data: 150 noisy samples of $f(x) = \sin(1.5x)$, 8% of them outliers shifted
        up by 3 to 6.  The same swish network (same seed, same initial weights) is
        fitted once with `log_cosh` and once with `"mse"`, and each fit is compared with
        the clean $f$ on a grid.
        """
    ),
    code(
        """
        def f(x):
            return np.sin(1.5 * x)


        rng = np.random.default_rng(0)
        n = 150
        x = rng.uniform(-3, 3, size=n)
        y = f(x) + 0.1 * rng.normal(size=n)
        outlier = rng.random(n) < 0.08
        y[outlier] += rng.uniform(3, 6, size=outlier.sum())
        X_reg, Y_reg = x[:, None], y[:, None]
        grid = np.linspace(-3, 3, 301)[:, None]

        fits, median_error = {}, {}
        for loss in [log_cosh, "mse"]:
            model = numbanet.Network([1, 16, 1], activations=[swish, "identity"], loss=loss, seed=0)
            model.fit(X_reg, Y_reg, epochs=300, batch_size=16, optimizer=numbanet.Adam(lr=0.01), progress=False)
            name = model.loss_name
            fits[name] = model
            median_error[name] = float(np.median(np.abs(model.predict(grid) - f(grid))))
        print(f"{outlier.sum()} outliers of {n} samples")
        print("median |fit - f| on the grid:", {k: round(v, 3) for k, v in median_error.items()})

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(x[~outlier], y[~outlier], ".", color="grey", alpha=0.6, label="data")
        ax.plot(x[outlier], y[outlier], "x", color="C3", label="outliers")
        ax.plot(grid, f(grid), "k:", lw=2, label="clean f(x)")
        for name, model in fits.items():
            ax.plot(grid, model.predict(grid), lw=2, label=f"{name} fit (median error {median_error[name]:.3f})")
        ax.set(xlabel="x", ylabel="y", title="Swish network, fitted with log-cosh and with MSE")
        ax.legend(fontsize=8)
        plt.show()

        # With this seed: log_cosh about 0.04, mse about 0.26.  Across other data seeds the
        # log-cosh error stayed below 0.5x the MSE error; the asserts leave that margin.
        assert median_error["log_cosh"] < 0.5 * median_error["mse"]
        assert median_error["log_cosh"] < 0.1
        """
    ),
    md(
        r"""
        ## The new built-in activations

        `elu`, `gelu`, `silu` and `softplus` are built in, with PyTorch's definitions
        (the formulas are in docs/derivation.md, "Activations").  Each is a pair of
        scalar functions in `numbanet.kernels.activations` -- `gelu(z)` and
        `gelu_slope(z, a)`, and so on -- and `activations.value(code, z, k, fns)` and
        `activations.slope(code, z, a, k, fns)` dispatch on the code (for a built-in,
        `k = -1` and `fns = builtin_fns()`).  ELU and softplus compute $\sigma'$ from
        $a$; GELU and SiLU need $z$ itself.

        The swish defined above is the built-in `silu`, written by hand.  Below, each
        $\sigma'$ is also compared with the central difference
        $\big(\sigma(z+h) - \sigma(z-h)\big)/2h$, $h = 10^{-6}$, at every plotted point.
        """
    ),
    code(
        """
        fns = builtin_fns()
        z = np.linspace(-4, 4, 321)
        h = 1e-6
        NEW = ["elu", "gelu", "silu", "softplus"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for name in NEW:
            code = act.CODES[name]
            a = np.array([act.value(code, zi, -1, fns) for zi in z])
            d = np.array([act.slope(code, zi, ai, -1, fns) for zi, ai in zip(z, a)])
            central = np.array([(act.value(code, zi + h, -1, fns) - act.value(code, zi - h, -1, fns)) / (2 * h)
                                for zi in z])
            np.testing.assert_allclose(d, central, rtol=1e-6, atol=1e-6)     # σ' is the slope of σ
            ax1.plot(z, a, label=name)
            ax2.plot(z, d, label=name)
        ax1.set(xlabel="z", ylabel="σ(z)", title="activation", ylim=(-1.5, 4))
        ax2.set(xlabel="z", ylabel="σ'(z)", title="derivative")
        ax1.legend()
        for ax in (ax1, ax2):
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
        plt.show()

        # Hand-written swish and built-in silu agree to rounding.
        silu = act.CODES["silu"]
        np.testing.assert_allclose([swish.function(zi) for zi in z], [act.value(silu, zi, -1, fns) for zi in z],
                                   rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose([swish.derivative(zi) for zi in z],
                                   [act.slope(silu, zi, act.silu(zi), -1, fns) for zi in z], rtol=1e-12, atol=1e-15)
        print("swish == silu, and its derivative == silu's")
        """
    ),
    md(
        r"""
        ### On the digits

        The 64–32–10 network of notebook 02 (softmax output, cross-entropy, Adam,
        10 epochs) with ReLU, GELU, the built-in SiLU and the hand-written swish as
        hidden units.  swish and silu are the same function; they differ only in the
        initialisation (He normal for the built-in, Glorot uniform for every custom
        activation), and a custom activation, called through its callback, trains about
        as fast as the built-in.  On a data set this small the differences in accuracy
        are within the noise of one seed.
        """
    ),
    code(
        """
        from IPython.display import Markdown, display
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X_all, y_all = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X_all / 16.0, y_all, test_size=0.25, stratify=y_all,
                                                            random_state=0)
        Y_train = np.eye(10)[y_train]

        rows = []
        for hidden in ["relu", "gelu", "silu", swish]:
            model = numbanet.Network([64, 32, 10], activations=[hidden, "softmax"], loss="cross_entropy", seed=0)
            model.fit(X_train, Y_train, epochs=10, batch_size=32, optimizer=numbanet.Adam(lr=3e-3), progress=False)
            accuracy = np.mean(model.predict(X_test).argmax(axis=1) == y_test)
            rows.append((model.activation_names[0], "built-in" if isinstance(hidden, str) else "custom", accuracy))

        table = "| hidden activation | kind | test accuracy |\\n| --- | --- | --- |\\n"
        table += "\\n".join(f"| `{name}` | {kind} | {acc:.1%} |" for name, kind, acc in rows)
        display(Markdown(table))
        assert all(acc > 0.93 for _, _, acc in rows)
        """
    ),
    md(
        r"""
        ## Saving and loading

        `numbanet.save` writes the parameters and the *names* of the custom pieces -- not
        their code.  `numbanet.load` needs the pieces back, by name, in `custom=`
        (Keras' `custom_objects` convention); `net.custom_pieces` gives the mapping of a
        network at hand.  Without it, `load` raises `numbanet.ModelFileError` and says
        what is missing.
        """
    ),
    code(
        """
        robust = fits["log_cosh"]
        print("custom pieces:", robust.custom_pieces)

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "robust.npz"
            numbanet.save(robust, path)
            restored = numbanet.load(path, custom={"swish": swish, "log_cosh": log_cosh})
            np.testing.assert_array_equal(restored.predict(grid), robust.predict(grid))
            assert restored.loss(X_reg, Y_reg) == robust.loss(X_reg, Y_reg)
            print("reloaded: identical predictions")

            missing = None
            try:
                numbanet.load(path)
            except numbanet.ModelFileError as error:
                missing = error
                print("\\nwithout custom=:", error)
            assert missing is not None and "swish" in str(missing) and "log_cosh" in str(missing)
        """
    ),
    md(
        r"""
        ## Pickling

        A network with custom pieces pickles when their functions do.  Functions defined
        with `def` at the top level of a module pickle *by reference* (the loading process
        imports them from that module, so put them in one of yours, not in a notebook);
        `lambda`s cannot be pickled by reference at all, so the standard `pickle`
        refuses them with a `PicklingError`.  `cloudpickle` -- which Dask, joblib's loky
        and other multiprocessing tools use -- pickles lambdas by value.
        """
    ),
    code(
        """
        refused = None
        try:
            pickle.dumps(robust)
        except pickle.PicklingError as error:
            refused = error
            print("pickle with lambdas:", type(error).__name__, "-", error)
        assert refused is not None

        try:
            import cloudpickle
        except ImportError:                          # scikit-learn's joblib ships a copy
            from joblib.externals import cloudpickle
        clone = pickle.loads(cloudpickle.dumps(robust))
        np.testing.assert_array_equal(clone.predict(grid), robust.predict(grid))
        print("cloudpickle with lambdas: identical predictions")


        def swish_value(z):
            return z / (1.0 + math.exp(-z))


        def swish_slope(z):
            s = 1.0 / (1.0 + math.exp(-z))
            return s * (1.0 + z * (1.0 - s))


        swish_def = numbanet.Activation("swish", swish_value, swish_slope)
        check_activation(swish_def)
        by_reference = numbanet.Network([1, 16, 1], activations=[swish_def, "identity"], loss="mse", seed=0)
        copy = pickle.loads(pickle.dumps(by_reference))
        np.testing.assert_array_equal(copy.predict(grid), by_reference.predict(grid))
        print("pickle with def functions: identical predictions")
        """
    ),
    md(
        r"""
        ## Summary

        | task | how |
        | --- | --- |
        | your own activation | `numbanet.Activation(name, function=σ, derivative=σ')`, scalar floats, Numba-compilable |
        | your own loss | `numbanet.Loss(name, cost=c(a, y), derivative=∂c/∂a)`, per output, summed over outputs |
        | check a derivative | `numbanet.testing.check_activation(act)`, `check_loss(loss)` |
        | check the network's gradient | `numbanet.gradcheck(net, X, Y)` |
        | save / load | `numbanet.save(net, path)`, `numbanet.load(path, custom=net.custom_pieces)` |
        | pickle | `def` functions in a module: `pickle`; lambdas: `cloudpickle` |
        """
    ),
]

NOTEBOOKS = {
    "01-backpropagation.ipynb": BACKPROP,
    "02-digits.ipynb": DIGITS,
    "03-gradient-verification.ipynb": GRADCHECK,
    "04-performance.ipynb": PERFORMANCE,
    "05-custom-activations.ipynb": CUSTOM,
}


def build(name, cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem.split('-')[0]}-{i:02d}"  # stable ids: no diff churn
    nbformat.validate(nb)
    return nb


def write_all():
    paths = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        nbformat.write(build(name, cells), path)
        paths.append(path)
    return paths


def check(paths, timeout=300):
    """Execute each notebook in memory; report run time and count the rendered PNG plots."""
    from nbclient import NotebookClient

    ok = True
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        seconds = time.perf_counter() - start
        images = sum(
            "image/png" in output.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
        )
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        print(f"{path.name:<34} {seconds:6.1f} s  {images} PNG plots")
        if images == 0 or errors:
            ok = False
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="execute the notebooks and count their plots")
    args = parser.parse_args(argv)
    paths = write_all()
    for path in paths:
        print("wrote", path.relative_to(HERE.parent))
    if args.check and not check(paths):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
