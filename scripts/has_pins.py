"""Exits 0 when the running interpreter has every `name==version` line of the requirement files
given as arguments installed at exactly that version, 1 otherwise. scripts/test.sh and
scripts/check-terraform.sh run it with a venv's python to decide whether to pip install."""

import sys
from importlib import metadata


def main() -> int:
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as requirements:
            for line in requirements:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                name, _, version = line.partition("==")
                try:
                    if metadata.version(name.strip()) != version.strip():
                        return 1
                except metadata.PackageNotFoundError:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
