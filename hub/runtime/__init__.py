"""What a running hub is made of, as its services see it: the installer
context (context), reloads checked whole and applied whole (reload,
reload_diff), its ports and certificate checks (listen) and the health
service (health). Below the services (api, admin), above the engine.
"""
