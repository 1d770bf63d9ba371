"""What the hub tells its operators: Prometheus metrics and OpenTelemetry
tracing. Every layer calls their small hooks; they import only hub.core and
the store's types.
"""
