"""The contract between the two halves: what the trainer writes and the service reads.

Owns the Redis key layout (keys), the model artifact (manifest, file names, confidence
weights; vector packing in vectors), domain ids and enums (domain), one definition per stream
record (records: events, exposures, profiles; from which the Lua argument order and the
drain's Arrow schema derive), a user's online state as the feed reads it (user_state),
catalogue records (catalog), the experiment definition format and variant assignment
(experiments, assignment), and the named crash points both halves honour in tests
(pause_points). Both `recsvc` and `training` import it; it imports nothing from either (only
the standard library, numpy and pydantic for the records' validation), so a change here is a
change of contract.
"""
