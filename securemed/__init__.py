"""SecureMed: federated, differentially private clinical AI on Ray.

This package is the Ray-free core: data, models, DP training, the federation's round logic
and aggregation rules. Ray actors, Serve deployments and jobs only host and wire it; gRPC
lives only in :mod:`securemed.transport`.
"""

__version__ = "0.1.0"
