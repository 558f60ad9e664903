import sys

from attnlens.cli import main

sys.exit(main())
