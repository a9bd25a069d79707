import sys

from coinpilot.cli import main

sys.exit(main())
