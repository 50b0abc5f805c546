"""The synthetic financial-app world: users, catalogue, events and the planted ground truth.

`generate` builds and writes a world; the other modules are its parts (vocabulary, sampling,
catalogue, users, events, tables, truth).
"""
