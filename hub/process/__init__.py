"""The hub process: the `cardlookup-hub` command (main) and the gRPC server
that builds the context, installs every service, starts and stops (server).
The top of the hub: it wires every layer below.
"""
