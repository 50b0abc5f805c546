"""Whether Redis is configured to keep what the service writes to it.

The event stream holds accepted events until the nightly drain, and the catalogue, profiles,
holdings and daily caps live only in Redis. Two settings decide whether Redis may lose them:

- `maxmemory-policy` other than `noeviction`: at its memory limit Redis evicts keys (the
  catalogue hashes, user vectors, the dedup markers of accepted events) instead of refusing
  writes, and nothing tells the writer;
- no AOF (`appendonly no`): a restart loses everything since the last RDB snapshot, or all of
  it without one, though each event was answered 202.

Read with INFO (managed Redis services often refuse CONFIG); on a Cluster every primary is
asked and any one at risk counts. A Redis that refuses INFO is an `unknown` risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from recsvc.store.client import AsyncClient

RISKS = ("eviction", "no_persistence", "unknown")


@dataclass(frozen=True)
class Durability:
    """What may be lost; `risks` are metric labels, `problems` sentences for /readyz."""

    risks: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def durable(self) -> bool:
        return not self.risks


def assess(infos: list[dict[str, Any]]) -> Durability:
    """The risks of Redis nodes, from their INFO memory and persistence sections."""
    risks: list[str] = []
    problems: list[str] = []
    policies = sorted({str(info.get("maxmemory_policy", "")) for info in infos})
    if any(policy != "noeviction" for policy in policies):
        risks.append("eviction")
        problems.append(
            f"Redis maxmemory-policy is {', '.join(policies)}, not noeviction: at its memory "
            "limit Redis evicts keys (catalogue, vectors, dedup markers of accepted events)"
        )
    if any(int(info.get("aof_enabled", 0)) != 1 for info in infos):
        risks.append("no_persistence")
        problems.append(
            "Redis has no AOF (appendonly no): a restart loses the events accepted since its "
            "last snapshot, and the catalogue and profiles without one"
        )
    return Durability(tuple(risks), tuple(problems))


async def check(client: AsyncClient) -> Durability:
    """The durability of the Redis (every primary of a Cluster) behind `client`. Redis
    errors propagate: the caller decides what an unreachable Redis means."""
    if isinstance(client, AsyncRedisCluster):
        memory: Any = await client.info("memory", target_nodes=AsyncRedisCluster.PRIMARIES)
        persistence: Any = await client.info(
            "persistence", target_nodes=AsyncRedisCluster.PRIMARIES
        )
        infos = [{**memory[node], **persistence[node]} for node in memory]
    else:
        infos = [{**(await client.info("memory")), **(await client.info("persistence"))}]
    return assess(infos)


UNKNOWN = Durability(("unknown",), ("Redis refused INFO: whether it can lose data is not known",))
