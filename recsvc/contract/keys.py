"""The Redis layout: every key the service and the publisher use, in one place.

A contract module (the nightly job may import it). Keys written together (in one MULTI
transaction or one script) share a Redis Cluster hash tag, so that they share a slot: one
user's keys carry `{u:<user_id>}` (and can be read in one round trip), the model pointers and
registry `{model}`, the catalogue `{catalog}`, the experiments `{experiments}`; the markers of
accepted events carry the event stream's own name as their tag, so they share its slot. On a
single Redis the tags change nothing. User vectors live under a model *generation* (a small
integer per published version, which keeps keys short); the pointer names the current version
and generation.

    <p>:{model}:current             JSON {"version", "generation"}: the current model
    <p>:{model}:challenger          the same for the challenger (published, not live; A/B tests)
    <p>:{model}:generation          counter of generations
    <p>:{model}:generations         hash generation -> JSON (version, users, state, time)
    <p>:{model}:publish-lock        held (with expiry) by the one publish or rollback running
    <p>:nightly:lock                held (with expiry) by the one nightly run or drain
    <p>:vec:<gen>:{u:<id>}          packed user vector (see recsvc.contract.vectors)
    <p>:{u:<id>}:profile            hash: risk_tolerance, segment, lifecycle
    <p>:{u:<id>}:holdings           set of product ids the user holds, as upstream says
    <p>:{u:<id>}:purchased          set of product ids bought, from purchase events
    <p>:{u:<id>}:recent             list, newest first, of "item_type|item_id|action|ratio"
    <p>:{u:<id>}:caps:<YYYYMMDD>    hash product_id -> products attached that UTC day, and
                                    c|<category> -> cards of that category that day
    <p>:{u:<id>}:ev:<event_id>      Cluster only: the event's update of the user's state is done
    <p>:{u:<id>}:backfill           the id of the history backfill that seeded this user's state
    <p>:events                      stream of accepted events (the nightly job drains it); with
                                    N > 1 shards (recsvc.contract.shards), shard i is
                                    <p>:events:{<tag i>}, and so are the exposures and cards
                                    streams and the markers and trending counts below: each
                                    {<p>:events} then reads {<tag>} of the user's shard
    <p>:{streams}:layouts           JSON, every shard count used and when (Layouts)
    <p>:drain:{<tag>}:lease         held (with expiry) by the drain of one shard
    <p>:{drain}:followers           hash consumer -> until when that follower is alive
    <p>:{drain}:pause               set while the erasure sweep holds every shard's lease
    <p>:ev:{<p>:events}:<n>/<id>:<ev>  marker of an accepted event: dedup (n: the user id's
                                    length, so that ids containing ':' cannot share one)
    <p>:trend:{<p>:events}:<hour>   hash "<video_id>|<action>" -> views or clicks of catalogue
                                    videos in that UTC hour (hours since the epoch; written with
                                    the event's append, in the stream's slot, the key built in
                                    the script like the markers; expires TREND_KEEP_HOURS after
                                    the hour)
    <p>:trend:{<p>:events}:since    the UTC hour since which the counts are kept (set by the
                                    first replica that reads them and finds none)
    <p>:fresh:{v:<id>}:viewers      hash event_id -> "<user_id>|<action>|<ratio>": the first
                                    events on a video the current model does not know (one
                                    published since), written once the events are accepted,
                                    bounded (recsvc.store.fresh); the item-side closed form over
                                    these users' vectors moves the video to a collaborative
                                    vector (recsvc.service.fresh)
    <p>:exposures                   stream of feeds served to users in experiments
    <p>:cards                       stream of every page served with product cards, each card
                                    with the checks that let it through (recsvc.contract.
                                    records.PageCards)
    <p>:{catalog}:videos|products   hash item_id -> JSON record
    <p>:{catalog}:revision          a random token, replaced on every catalogue change
    <p>:{experiments}:definition    the experiments' TOML definition (recsvc.contract.experiments)
    <p>:{experiments}:revision      a random token, replaced with every definition
    <p>:{experiments}:history       list, oldest first, of every definition ever stored: JSON
                                    {"revision", "stored_at", "definition"} (the report of an
                                    experiment that ended reads its definition here)
    <p>:{campaigns}:definition      the campaign rules' TOML definition (recsvc.contract.campaigns)
    <p>:{campaigns}:revision        a random token, replaced with every definition
    <p>:{campaigns}:history         list, oldest first, of every definition stored (as the
                                    experiments' history): what ran when, for the audit
    <p>:{erasures}:pending          hash user_id -> ISO time: users erased through
                                    DELETE /v1/users/{id} whose remaining traces (the streams,
                                    dedup markers, new videos' viewers, the partitions) the next
                                    nightly run removes; it then deletes the entry
"""

from __future__ import annotations

from dataclasses import dataclass

from recsvc.contract.shards import shard_of, shard_tag


@dataclass(frozen=True)
class Keys:
    prefix: str = "recsvc"

    @property
    def model_current(self) -> str:
        return f"{self.prefix}:{{model}}:current"

    @property
    def model_challenger(self) -> str:
        return f"{self.prefix}:{{model}}:challenger"

    @property
    def model_generation(self) -> str:
        return f"{self.prefix}:{{model}}:generation"

    @property
    def model_generations(self) -> str:
        return f"{self.prefix}:{{model}}:generations"

    @property
    def publish_lock(self) -> str:
        return f"{self.prefix}:{{model}}:publish-lock"

    @property
    def nightly_lock(self) -> str:
        return f"{self.prefix}:nightly:lock"

    @property
    def events(self) -> str:
        """The event stream of a single shard (the name from before sharding)."""
        return f"{self.prefix}:events"

    @property
    def stream_layouts(self) -> str:
        """Every shard count the streams were split into, and when (recsvc.contract.shards)."""
        return f"{self.prefix}:{{streams}}:layouts"

    def drain_lease(self, tag: str) -> str:
        """The lock held by the drain of the shard whose tag is `tag` (training.data.drain)."""
        return f"{self.prefix}:drain:{{{tag}}}:lease"

    @property
    def drain_pause(self) -> str:
        """Set (with expiry) while the erasure sweep needs every shard: followers let go of
        theirs and take none until it is gone (training.data.erasure)."""
        return f"{self.prefix}:{{drain}}:pause"

    @property
    def drain_followers(self) -> str:
        """Hash consumer -> epoch seconds until which that `recsvc drain --follow` counts as
        alive (each takes its share of the shards: training.data.follow)."""
        return f"{self.prefix}:{{drain}}:followers"

    def stream_tag(self, shard: int, shards: int) -> str:
        """The hash tag shared by shard `shard` of `shards` of the three streams, with its
        dedup markers and trending counts (one shard: the event stream's name)."""
        return self.events if shards == 1 else shard_tag(self.prefix, shard, shards)

    def stream(self, name: str, shard: int = 0, shards: int = 1) -> str:
        """Shard `shard` of `shards` of the stream `name` (events, exposures or cards)."""
        if shards == 1:
            return f"{self.prefix}:{name}"
        return f"{self.prefix}:{name}:{{{shard_tag(self.prefix, shard, shards)}}}"

    def user_stream(self, name: str, user_id: str, shards: int) -> str:
        """The shard of the stream `name` that takes `user_id`'s entries under `shards`."""
        return self.stream(name, shard_of(user_id, shards), shards)

    def streams(self, name: str, shards: int) -> list[str]:
        """Every shard of the stream `name` under a layout of `shards`."""
        return [self.stream(name, shard, shards) for shard in range(shards)]

    def every_stream(self, name: str, counts: tuple[int, ...]) -> list[str]:
        """Every shard of the stream `name` in each of the layouts of `counts` shards."""
        return list(dict.fromkeys(s for n in counts for s in self.streams(name, n)))

    def user_streams(self, name: str, user_id: str, counts: tuple[int, ...]) -> list[str]:
        """The user's shard of the stream `name` in each of the layouts of `counts` shards."""
        return list(dict.fromkeys(self.user_stream(name, user_id, n) for n in counts))

    def event_accepted(self, user_id: str, event_id: str) -> str:
        """The dedup marker of an accepted event, in the event stream's slot.

        The user id goes in with its length (in bytes, as the INGEST script's `#` counts it):
        ids may contain ':', and `acct` + `R:42` must not name the marker of `acct:R` + `42`.
        The '/' after the length appears in no id, so no marker written before this format
        (`...:<user>:<event>`, until issue 13) equals a marker of today's. Across the upgrade,
        a client's retry of an event accepted before it is therefore not recognised as a
        duplicate for `RECSVC_EVENT_DEDUP_DAYS` at most: appended to the stream again (the
        nightly job drops repeated event ids; the user's recent list holds it twice), never
        lost. The old markers expire on their own.
        """
        return self.event_marker(self.events, user_id, event_id)

    def event_marker(self, tag: str, user_id: str, event_id: str) -> str:
        """The dedup marker of an accepted event in the shard whose tag is `tag`."""
        return f"{self.prefix}:ev:{{{tag}}}:{len(user_id.encode())}/{user_id}:{event_id}"

    def fresh_viewers(self, video_id: str) -> str:
        """The first events on a video not in the model, in the video's own slot."""
        return f"{self.prefix}:fresh:{{v:{video_id}}}:viewers"

    def trend(self, hour: int, tag: str | None = None) -> str:
        """The live trending counts of one UTC hour (hours since the epoch) of the events in
        the shard whose tag is `tag` (the single shard's, unless told), in its slot: the
        INGEST script counts an event in the same step as its append."""
        return f"{self.prefix}:trend:{{{tag or self.events}}}:{hour}"

    @property
    def trend_since(self) -> str:
        """The UTC hour since which trending counts are kept (recsvc.service.trends)."""
        return f"{self.prefix}:trend:{{{self.events}}}:since"

    @property
    def exposures(self) -> str:
        return f"{self.prefix}:exposures"

    @property
    def cards(self) -> str:
        return f"{self.prefix}:cards"

    @property
    def catalog_videos(self) -> str:
        return f"{self.prefix}:{{catalog}}:videos"

    @property
    def catalog_products(self) -> str:
        return f"{self.prefix}:{{catalog}}:products"

    @property
    def catalog_revision(self) -> str:
        return f"{self.prefix}:{{catalog}}:revision"

    @property
    def experiments_definition(self) -> str:
        return f"{self.prefix}:{{experiments}}:definition"

    @property
    def experiments_revision(self) -> str:
        return f"{self.prefix}:{{experiments}}:revision"

    @property
    def experiments_history(self) -> str:
        return f"{self.prefix}:{{experiments}}:history"

    @property
    def campaigns_definition(self) -> str:
        return f"{self.prefix}:{{campaigns}}:definition"

    @property
    def campaigns_revision(self) -> str:
        return f"{self.prefix}:{{campaigns}}:revision"

    @property
    def campaigns_history(self) -> str:
        return f"{self.prefix}:{{campaigns}}:history"

    @property
    def erasures(self) -> str:
        """Users erased whose remaining traces the next nightly run removes."""
        return f"{self.prefix}:{{erasures}}:pending"

    def vector_pattern(self, generation: int) -> str:
        """SCAN pattern matching every vector of one generation."""
        return f"{self.prefix}:vec:{generation}:*"

    def vector(self, generation: int, user_id: str) -> str:
        return f"{self.prefix}:vec:{generation}:{{u:{user_id}}}"

    def user(self, user_id: str) -> str:
        """Prefix of one user's state keys, hash tag included (names the user's slot)."""
        return f"{self.prefix}:{{u:{user_id}}}"

    def profile(self, user_id: str) -> str:
        return f"{self.user(user_id)}:profile"

    def holdings(self, user_id: str) -> str:
        return f"{self.user(user_id)}:holdings"

    def purchased(self, user_id: str) -> str:
        return f"{self.user(user_id)}:purchased"

    def event_applied(self, user_id: str, event_id: str) -> str:
        """Cluster only: the event's update of the user's recent items and purchases is done.
        (Unambiguous as it is: the user id ends at the tag's '}', which no id contains.)"""
        return f"{self.user(user_id)}:ev:{event_id}"

    def recent(self, user_id: str) -> str:
        return f"{self.user(user_id)}:recent"

    def backfilled(self, user_id: str) -> str:
        """The id of the history backfill (recsvc state backfill) that seeded the user's
        recent items and purchases: a second run of the same backfill skips the user."""
        return f"{self.user(user_id)}:backfill"

    def caps(self, user_id: str, day: str) -> str:
        return f"{self.user(user_id)}:caps:{day}"
