"""The worked example: fit y = 3*x0 + 2*x1 + noise, deploy it on the accelerator, compare MSE.

Run it with ``python examples/linear_regression.py [--device emu|sim|sim:icarus|serial://...]``.
"""

import argparse

import numpy as np

import tessera


def fit_linear_regression(seed=0, n=100):
    """Return (x, y, w, b): 100 noisy samples of y = 3*x0 + 2*x1 and the least-squares fit."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2)).astype(np.float32)
    y = (3.0 * x[:, 0] + 2.0 * x[:, 1] + rng.normal(0.0, 0.1, size=n)).astype(np.float32)
    design = np.hstack([x, np.ones((n, 1), np.float32)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    # A one-unit dense layer: W is [in_features, out_features], y = x @ W + b.
    return x, y, coef[:2].reshape(2, 1), coef[2:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="emu", help="tessera.connect target (default emu)")
    args = parser.parse_args(argv)

    x, y, w, b = fit_linear_regression()
    qmodel = tessera.quantize([(w, b, None)], calibration=x, mode="onnx")
    with tessera.connect(args.device) as dev:
        y_dev = dev.run(qmodel, x)[:, 0]
    y_float = (x @ w + b)[:, 0]
    print(f"learned   y = {w[0, 0]:.3f}*x0 + {w[1, 0]:.3f}*x1 + {b[0]:.3f}")
    print(f"MSE float       {np.mean((y_float - y) ** 2):.5f}")
    print(f"MSE accelerator {np.mean((y_dev - y) ** 2):.5f}  ({args.device})")
    print(f"identical to qmodel.predict: {np.array_equal(y_dev, qmodel.predict(x)[:, 0])}")


if __name__ == "__main__":
    main()
