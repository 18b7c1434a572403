"""``python -m tessera.cli``: the ``tessera`` command line."""

import sys

from . import main

sys.exit(main())
