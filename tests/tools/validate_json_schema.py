#!/usr/bin/python3
"""Validates JSON documents against a JSON Schema (draft 2020-12).

usage: validate_json_schema.py SCHEMA FILE...
Prints one line per invalid document with the failing JSON path; exit 0 when all valid.
Uses Debian's python3-jsonschema (installed by scripts/setup).
"""
import json
import sys

import jsonschema


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    bad = 0
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for err in validator.iter_errors(doc):
            bad += 1
            print(f"{path}: /{'/'.join(str(p) for p in err.absolute_path)}: {err.message}")
    print(f"validated {len(sys.argv) - 2} document(s), {bad} error(s)")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
