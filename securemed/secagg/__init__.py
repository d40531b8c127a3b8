"""Secure aggregation: the aggregator learns the sum of the hospitals' updates and nothing else.

The protocol of Bonawitz et al. (CCS 2017) over the sparse SecAgg+ neighbour graph of Bell et
al. (CCS 2020), as pure state machines (:class:`SecAggClient`, :class:`SecAggServer`) that do
no I/O; the transport carries their messages. See :mod:`securemed.secagg.protocol` for the
flow of a round.
"""

from securemed.secagg.client import SecAggClient
from securemed.secagg.params import SecAggParams
from securemed.secagg.server import SecAggServer, UnmaskedSum

__all__ = ["SecAggClient", "SecAggParams", "SecAggServer", "UnmaskedSum"]
