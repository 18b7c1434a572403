"""Formal proofs of Tessera's gateware with pip-installed tools (``make formal``).

Harnesses wrap the components of ``hw/`` from the outside (``Assume`` on what drives them,
``Assert`` on what they promise) and SymbiYosys proves them with Yices (:mod:`formal.sby`):

- :mod:`formal.streams` -- the stream handshake rules of the link and the PostProcessor;
- :mod:`formal.receiver` -- only verified frames are handed over, timed-out frames are dropped;
- :mod:`formal.executor` -- no program writes outside a buffer or wedges the device;
- :mod:`formal.requant` -- the tflite requant unit equals its formula.

:mod:`formal.checks` lists them with their modes and depths; ``python -m formal`` runs them.
See docs/verification.md.
"""
