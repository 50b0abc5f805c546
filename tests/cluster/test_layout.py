"""The Redis layout on a real Cluster: one user's keys in one slot, and every group of global
keys written together (in one transaction or script) in one slot."""

from __future__ import annotations

import redis

from sandbox.embedded_redis import EmbeddedCluster
from tests.cluster.builders import KEYS, keyslot


def test_every_key_of_one_user_is_in_one_slot(redis_cluster: EmbeddedCluster) -> None:
    for user in ("u-save", "42", "user.with:colons-and_more"):
        names = [
            KEYS.user(user),
            KEYS.vector(7, user),
            KEYS.profile(user),
            KEYS.holdings(user),
            KEYS.purchased(user),
            KEYS.recent(user),
            KEYS.caps(user, "20260101"),
            KEYS.event_applied(user, "e-1"),
        ]
        assert len({keyslot(redis_cluster, name) for name in names}) == 1, names


def test_keys_written_together_share_a_slot(redis_cluster: EmbeddedCluster) -> None:
    groups = [
        [
            KEYS.model_current,
            KEYS.model_challenger,
            KEYS.model_generation,
            KEYS.model_generations,
            KEYS.publish_lock,
        ],
        [KEYS.catalog_videos, KEYS.catalog_products, KEYS.catalog_revision],
        [KEYS.experiments_definition, KEYS.experiments_revision],
        [KEYS.events, KEYS.event_accepted("u-1", "e-1"), KEYS.event_accepted("u-2", "e-2")],
    ]
    for group in groups:
        assert len({keyslot(redis_cluster, name) for name in group}) == 1, group
    # Users are spread: a thousand users fall in many slots (a batch is split by slot).
    with redis.Redis(port=redis_cluster.ports[0]) as client:
        slots = {client.execute_command("CLUSTER KEYSLOT", KEYS.user(str(i))) for i in range(1000)}
    assert len(slots) > 900
