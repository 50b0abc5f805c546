"""The nightly job reads users' segments from their profiles on a Redis Cluster: each
profile in its own user's slot, spread over every master."""

from __future__ import annotations

from recsvc.store.client import sync_client
from sandbox.embedded_redis import EmbeddedCluster
from tests.cluster.builders import KEYS, masters
from training.data.segments import read_profiles


def test_profiles_on_every_master_give_their_users_segments(
    redis_cluster: EmbeddedCluster, cluster_url: str
) -> None:
    client = sync_client(cluster_url, cluster=True)
    try:
        users = [f"u{i:04d}" for i in range(3000)]  # more than one chunk of reads
        pipe = client.pipeline(transaction=False)
        for i, user in enumerate(users[:-2]):
            pipe.hset(KEYS.profile(user), mapping={"segment": f"s{i % 3}", "lifecycle": "active"})
        pipe.hset(KEYS.profile(users[-2]), mapping={"lifecycle": "new"})  # no segment
        pipe.execute()  # users[-1]: no profile at all
        with masters(redis_cluster) as nodes:
            assert all(node.dbsize() > 0 for node in nodes)

        segments = read_profiles(client, KEYS, users)
    finally:
        client.close()
    assert segments.of == {user: f"s{i % 3}" for i, user in enumerate(users[:-2])}
    assert segments.as_dict(users) == {"source": "profiles in Redis", "users": 2998, "segments": 3}
