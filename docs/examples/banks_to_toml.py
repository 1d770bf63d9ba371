"""Print hub.toml [[banks]] entries from the file `cardlookup-banks --addresses-out` writes.

python docs/examples/banks_to_toml.py var/banks.json >> hub.toml
"""

import json
import sys
from pathlib import Path

for code, address in json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))["banks"].items():
    print(f'[[banks]]\ncode = "{code}"\naddress = "{address}"\n')
