"""`python -m slmexp.report DIR ...`: the report's command line without Hydra (same as `slmexp report DIR`)."""

import sys

from slmexp.report import main

sys.exit(main())
