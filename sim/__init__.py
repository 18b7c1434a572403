"""cocotb testbenches and runner glue for the Tessera RTL (importable as ``tessera.sim``)."""
