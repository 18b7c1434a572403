"""``python -m tessera``: the ``tessera`` command line."""

import sys

from tessera.cli import main

sys.exit(main())
