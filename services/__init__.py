"""Ray Serve deployments of the report service; ``services.app`` binds the graph."""
