"""The contract between the two halves: what the trainer writes and the service reads.

Owns the Redis key layout (keys), the model artifact (manifest, vector packing), domain ids and
enums (domain), catalogue records (catalog), the experiment definition format and variant
assignment (experiments, assignment), and the named crash points both halves honour in tests
(pause_points). Both `recsvc` and `training` import it; it imports nothing from either (only
the standard library and numpy), so a change here is a change of contract.
"""
