"""`python -m livegen.training ...` is `livegen-train ...` (and what torchrun runs with -m)."""

import sys

from livegen.training.cli import main

sys.exit(main())
