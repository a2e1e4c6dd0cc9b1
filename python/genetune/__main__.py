"""``python -m genetune run JOB.yaml``."""

import sys

from genetune.cli import main

sys.exit(main())
