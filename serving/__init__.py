"""The attnlens HTTP service (BentoML): serving.service is the entry point."""

import sys
from pathlib import Path

# Inside a Bento the repository's src/ travels as plain files (attnlens is not pip-installed
# there); appended, so an installed attnlens (the development venv) still wins.
_SOURCE_TREE = Path(__file__).resolve().parents[1] / "src"
if (_SOURCE_TREE / "attnlens").is_dir() and str(_SOURCE_TREE) not in sys.path:
    sys.path.append(str(_SOURCE_TREE))
