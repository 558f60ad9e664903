"""Fine-tuning job script: `python training/train.py CONFIG [key=value ...]` (one process) or
`accelerate launch [launch options] training/train.py CONFIG [key=value ...]` (any number of
processes and machines). The job itself lives in `attnlens.training` so `attnlens train` runs the
very same code; see docs/training.md.
"""

import sys

from attnlens.training.entry import main

if __name__ == "__main__":
    sys.exit(main())
