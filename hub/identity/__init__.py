"""Identity and the user's rules: real-name users and their eligibility
(R1, R2), SMS verification and face attestation (R4), the payment password
with lockout (R10), and the query journey that enforces them before the
engine contacts any bank."""
