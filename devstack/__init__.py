"""Development stacks, demos and replica harnesses: the code that starts the
hub and the bank simulator as local processes for people and tests. It may
import every other package (cardlookup, hub, bank_sim, client); nothing but
bench/ and the tests imports it. Not part of what an app backend installs.

- devstack.demo: `cardlookup-demo` (what `bash scripts/demo.sh` runs).
- devstack.localstack: the bank simulator and a hub as local processes
  (the demo, the benchmark and tests).
- devstack.replicastack, devstack.spread, devstack.replica_demo: several
  hub replicas on one PostgreSQL, journeys spread over them, and the replica
  demo (`bash scripts/replica_demo.sh`).
"""
