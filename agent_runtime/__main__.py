"""``python -m agent_runtime serve|check-config``."""

import sys

from agent_runtime.cli import main

sys.exit(main())
