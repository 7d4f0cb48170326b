"""`python -m remediator` is the `remediator` command."""

import sys

from remediator.cli import main

sys.exit(main())
