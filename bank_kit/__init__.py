"""A Python bank starter kit for cardlookup.bank.v1 (synchronous grpcio).

Copy this folder into your bank's project; README.md says how to generate the
contract's code, run the server and its tests, and pass the conformance suite.
"""
