"""``python -m agentlane …`` is ``agentlane …``."""

from agentlane.cli import main

raise SystemExit(main())
