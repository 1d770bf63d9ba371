"""The hub's vocabulary and ambient services, used by every layer: the
configuration, domain values, the served call's deadline, structured
logging and the SMS seam. Imports nothing of the hub above it.
"""
