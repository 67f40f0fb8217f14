"""`python -m pipeline.cli.doctor`, as `make doctor` runs it."""

import sys

from pipeline.cli.doctor.runner import main

sys.exit(main())
