"""Write the schemas the TypeScript client's types are generated from, straight from the code (no
server needed): the command API's OpenAPI document (what ``GET /openapi.json`` serves with JWT
auth on) and the JSON Schema of the WebSocket frames (``GET /ws-schema.json``).

Usage: python clients/typescript/scripts/dump_schemas.py [--check]
(``npm run generate`` runs it, then the generators.) ``--check`` writes nothing and exits 1 when
a committed copy in ``clients/typescript/schema/`` differs from the code's: the generated types
are stale (tests/clients/test_typescript_client.py checks the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
SCHEMA_DIR = PACKAGE / "schema"


def schemas() -> dict[str, str]:
    """File name -> the text it must hold."""
    root = str(PACKAGE.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # a checkout without `pip install -e .`
    from command_service.openapi import build_openapi
    from gateway.protocol import frames_json_schema

    documents = {"openapi.json": build_openapi(jwt=True), "ws-frames.json": frames_json_schema()}
    return {
        name: json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        for name, document in documents.items()
    }


def stale() -> list[str]:
    """The committed copies that differ from the code's schemas."""
    return [
        name for name, text in schemas().items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        names = stale()
        for name in names:
            print(f"stale: clients/typescript/schema/{name} (run `npm run generate` there)")
        return 1 if names else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in schemas().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote schema/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
