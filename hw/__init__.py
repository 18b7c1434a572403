"""Tessera gateware (Amaranth HDL), elaborated from a :class:`tessera.AcceleratorConfig`."""
