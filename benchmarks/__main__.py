"""``python -m benchmarks``: the same command line as ``restore-bench``."""
import sys

from .cli import main

sys.exit(main())
