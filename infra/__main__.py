"""Pulumi entry point for one agentlane stack: `pulumi up` runs this file."""

import sys
from pathlib import Path

# Pulumi runs this directory as a script; the repository root makes `infra` a package again.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.config import load
from infra.program import build

build(load())
