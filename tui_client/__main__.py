import sys

from tui_client.cli import main

sys.exit(main())
