"""The shared kernel of the card-lookup project.

`cardlookup.bank.v1` and `cardlookup.hub.v1` hold the code generated from
protos/ (never edit it: run scripts/gen_protos.sh). The hand-written modules
here are the few things the hub, the bank simulator, the client and the tests
all need, so that none of them depends on another:

- banks, regions: the default registry of banks (docs/rules.md) and regions (R2)
- checksums: GB 11643 ID check characters and Luhn card digits
- consent: the hub-signed consent artefact banks verify (R4)
- pki: the development PKI (CA, certificates, signing keys)
- tls: gRPC credentials from PEM files and peer identity
- population: the deterministic synthetic population (test ground truth)
- clock: the injectable clock every time rule reads
- rpc_errors: gRPC errors with google.rpc.ErrorInfo details
- resource_names: the hub API's resource names (users/{u}/queries/{q})
"""
