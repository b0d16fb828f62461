"""The drills import the scenarios' shared helpers (tests/infra/labrun.py) and this directory's hadrill.py."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[3] / "tests" / "infra"), str(Path(__file__).parent)]
