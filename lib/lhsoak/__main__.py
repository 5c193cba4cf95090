"""`python -m lhsoak` is the `lhsoak` command."""

import sys

from lhsoak.cli import main

sys.exit(main())
