"""The bank contract cardlookup.bank.v1, generated for the kit (see generate.py)."""
