"""Formal proofs of Tessera's gateware with pip-installed tools (``make formal``).

Harnesses wrap the components of ``hw/`` from the outside (``Assume`` on what drives them,
``Assert`` on what they promise) and SymbiYosys proves them with Yices (:mod:`formal.sby`):

- :mod:`formal.streams` -- the stream handshake rules of the link and the PostProcessor;
- :mod:`formal.receiver` -- only verified frames are handed over, timed-out frames are dropped;
- :mod:`formal.executor` -- the executor's environment; no program writes outside a buffer;
- :mod:`formal.answers` -- every request is answered within a derived bound (k-induction, with
  the invariants it needs; :mod:`formal.probe` reaches the internal registers);
- :mod:`formal.requant` -- the tflite requant unit equals its formula.

:mod:`formal.checks` lists them with their modes and depths; ``python -m formal`` runs them.
See docs/verification.md.
"""
