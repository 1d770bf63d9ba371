"""A query's report: building and encoding it (report), sealing each bank's
answer to the user on arrival (sealing), and the associated data each sealed
item of a query is bound to (contexts). Above the store and the keys,
below the engine and the identity rules that use it.
"""
