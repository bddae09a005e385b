"""Library errors survive pickling (the collective cache shares failures between xdist workers)."""

from __future__ import annotations

import pickle

import pytest

from clusterproof.errors import ClusterproofError, CommandFailed, InventoryError, NodeUnreachable, ParseError


@pytest.mark.parametrize(
    "error",
    [
        InventoryError("c.yaml", ["nodes[0].host: missing", "ssh.user: unknown key"]),
        CommandFailed("node03", "mpirun -H a:1 x", 7, "line1\nline2", ""),
        CommandFailed("node03", "sleep 9", None, "", "timed out after 2 s"),
        NodeUnreachable("node04", "connection refused at 10.0.0.4:22"),
        ParseError("line 12: not a row"),
        ClusterproofError("plain"),
    ],
)
def test_errors_round_trip_through_pickle(error: ClusterproofError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error) and vars(back) == vars(error)
