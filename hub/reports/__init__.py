"""A query's report: building and encoding it (report) and sealing each bank's
answer to the user on arrival (sealing). Above the store and the keys,
below the engine and the identity rules that use it.
"""
