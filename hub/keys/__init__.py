"""The hub's keys and what they do: envelope encryption at rest, keyed
hashes and the consent signer (crypto), keys held in an HSM (hsm), sealing
to the user's payment-password key (user_sealing) and the server's
reloadable TLS certificates (certs). Below the store, which seals with it.
"""
