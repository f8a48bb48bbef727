"""``python -m agentlane.cli …`` is ``agentlane …`` (how ``agentlane dev`` starts its children)."""

from agentlane.cli import main

raise SystemExit(main())
