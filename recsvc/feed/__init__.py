"""The feed computation: from a user, a model and a catalogue to a ranked page with cards.

Owns the ONNX ranker (ranker), the fold-in of recent items into a user vector (foldin), the
product-attach rules (attach: suitability, holdings, disclosures) and the assembly of a page
(compute). Pure: no Redis, no HTTP, no settings; its inputs are values. May import
`recsvc.contract` only.
"""
