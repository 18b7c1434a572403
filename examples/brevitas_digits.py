"""Quantization-aware training at 4 bits with Brevitas, imported through QONNX into Tessera.

Needs the ``qonnx`` and ``torch`` extras (``pip install -e '.[qonnx,torch,sklearn]'``). Trains
a digits MLP 64-32-10 (scikit-learn's 8x8 digits, the split of ``tessera demo``) three ways and
prints the test accuracy of each at int4 (4-bit weights and activations):

* QAT: Brevitas ``QuantLinear``/``QuantReLU`` with power-of-two scales (``*FixedPoint``
  quantizers, ``Int32Bias``), exported with ``brevitas.export.export_qonnx``, loaded with
  ``tessera.load_model`` and run on the device; the same file run by QONNX's own executor
  (``qonnx.core.onnx_exec.execute_onnx``) gives the same outputs bit for bit;
* QAT with Brevitas's default float scales (the executor's float32 Gemm then rounds near-ties
  its own way: the count of differing outputs is printed);
* PTQ: the same network trained in float, then ``tessera.quantize(model, x, bits=4)``.

Run it with ``python examples/brevitas_digits.py [--device emu|sim|serial://...] [--epochs N]``.
"""

import argparse
import contextlib
import io
import os
import tempfile
import warnings

import numpy as np

import tessera


@contextlib.contextmanager
def quiet():
    """Silence Brevitas's deprecation warnings and the exporter's progress lines."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def digits(seed=0):
    """Return ``(x_train, x_test, y_train, y_test)``: ``tessera demo``'s digits split in [0, 1]."""
    from tessera.cli.demo import _digits
    return _digits(seed)


def brevitas_mlp(sizes=(64, 32, 10), *, bits=4, fixed_point=True, signed=False, seed=0):
    """Return a Brevitas MLP: unsigned input quantizer, ``QuantLinear`` + ``QuantReLU`` layers
    and a signed output quantizer, all ``bits`` wide, with ``Int32Bias`` biases.

    ``fixed_point``: power-of-two scales (``*FixedPoint`` quantizers) instead of float scales.
    ``signed``: signed input and ReLU quantizers (zero point 0 on Tessera's grid, which 16-bit
    activations need: an unsigned 16-bit grid's offset zero point overflows the folded bias).
    """
    import torch
    with quiet():
        import brevitas.nn as qnn
        from brevitas import quant
    torch.manual_seed(seed)
    kind = "FixedPoint" if fixed_point else "Float"
    weight = getattr(quant, f"Int8WeightPerTensor{kind}")
    signed_quant, unsigned = (getattr(quant, f"{s}8ActPerTensor{kind}") for s in ("Int", "Uint"))
    if signed:
        unsigned = signed_quant
    layers = [qnn.QuantIdentity(act_quant=unsigned, bit_width=bits, return_quant_tensor=True)]
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(qnn.QuantLinear(k, n, bias=True, weight_quant=weight, weight_bit_width=bits,
                                      bias_quant=quant.Int32Bias, return_quant_tensor=not last,
                                      **({"output_quant": signed_quant, "output_bit_width": bits}
                                         if last else {})))
        if not last:
            layers.append(qnn.QuantReLU(act_quant=unsigned, bit_width=bits,
                                        return_quant_tensor=True))
    return torch.nn.Sequential(*layers)


def float_mlp(sizes=(64, 32, 10), *, seed=0):
    """Return the same network in plain PyTorch (``Linear`` + ``ReLU``)."""
    import torch
    torch.manual_seed(seed)
    layers = []
    for k, n in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(k, n), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def train(model, x, y, *, epochs=30, seed=0, batch=64, lr=0.01):
    """Fit ``model`` with Adam on the cross-entropy; return it in eval mode."""
    import torch
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with quiet():
        for _ in range(epochs):
            for idx in torch.randperm(len(xt)).split(batch):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                optimizer.step()
    return model.eval()


def export(model, path, *, in_features, qcdq=False):
    """Write ``model`` as QONNX (``export_qonnx``) or QCDQ (``export_onnx_qcdq``); return path."""
    import torch
    with quiet():
        from brevitas.export import export_onnx_qcdq, export_qonnx
        if qcdq:      # Brevitas 0.13's dynamo QCDQ export refuses quantized biases
            export_onnx_qcdq(model, torch.zeros(1, in_features), export_path=str(path),
                             dynamo=False)
        else:
            export_qonnx(model, torch.zeros(1, in_features), export_path=str(path))
    return path


def qonnx_execute(path, x):
    """Return QONNX's executor's output for ``x`` [M, K] (the file's batch set to M)."""
    import onnx
    with quiet():
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.util.cleanup import cleanup_model
    model = onnx.load(str(path))
    constants = {t.name for t in model.graph.initializer}
    del model.graph.value_info[:]
    for tensor in [*model.graph.input, *model.graph.output]:
        if tensor.name not in constants:
            tensor.type.tensor_type.shape.dim[0].dim_value = len(x)
    with quiet():
        wrapper = cleanup_model(ModelWrapper(model))
        name = next(i.name for i in wrapper.graph.input if i.name not in constants)
        return execute_onnx(wrapper, {name: np.asarray(x, np.float32)})[
            wrapper.graph.output[0].name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="emu", help="tessera.connect target (default emu)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    args = parser.parse_args(argv)
    x_train, x_test, y_train, y_test = digits()
    rows = []
    config = tessera.AcceleratorConfig().with_widths(4, 4)      # 4-bit operands
    with tempfile.TemporaryDirectory() as tmp, tessera.connect(args.device, config=config) as dev:
        for label, fixed in (("QAT int4 (Brevitas, power-of-two scales)", True),
                             ("QAT int4 (Brevitas, float scales)", False)):
            net = train(brevitas_mlp(fixed_point=fixed), x_train, y_train, epochs=args.epochs)
            path = export(net, os.path.join(tmp, f"digits_{fixed}.onnx"), in_features=64)
            qmodel = tessera.load_model(path)
            y_dev = dev.run(qmodel, x_test)
            y_qonnx = qonnx_execute(path, x_test)
            same = int(np.sum(y_dev == y_qonnx))
            rows.append((label, np.mean(y_dev.argmax(1) == y_test),
                         f"{same}/{y_dev.size} outputs equal to QONNX's executor"))
        net = train(float_mlp(), x_train, y_train, epochs=args.epochs)
        ptq = tessera.quantize(net, x_train, bits=4)
        rows.append(("PTQ int4 (same network trained in float, tessera.quantize bits=4)",
                     np.mean(dev.run(ptq, x_test).argmax(1) == y_test), ""))
        with quiet():
            import torch
            logits = net(torch.from_numpy(x_test)).detach().numpy()
        rows.append(("float32 (same network)", np.mean(logits.argmax(1) == y_test), ""))
    print(f"digits MLP 64-32-10, {len(x_test)} test images, device {args.device}")
    for label, accuracy, note in rows:
        print(f"{label:<68} {100 * accuracy:6.2f} %  {note}")


if __name__ == "__main__":
    main()
