"""``python -m captum_higher_order.cli`` (also under ``torchrun -m``)."""

import sys

from captum_higher_order.cli import main

sys.exit(main())
