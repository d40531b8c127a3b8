"""The report service's logic, free of Ray: settings, state, image intake and the model runner.

``services/`` hosts these in Ray Serve deployments; everything here is testable without Ray.
"""
