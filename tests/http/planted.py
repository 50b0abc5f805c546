"""A tiny model with a planted answer, for the service's tests.

Four topics, one per embedding axis: insurance (0), saving (1), investing (2), credit (3).
Three videos per topic, scaled 1.0 / 0.9 / 0.8 so the order inside a topic is known. Products
sit on the same axes, with the risk levels, categories and disclosures the rules care about.
A user published on an axis must get that topic's videos first, in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsvc.contract.catalog import VideoRecord
from recsvc.contract.manifest import (
    METADATA_FEATURES_FILE,
    METADATA_MAP_FILE,
    TRENDING_FILE,
    USER_GRAM_FILE,
)
from training.models.export import export_model
from training.models.metadata import fit_metadata_map

DIM = 4
TOPICS = ("insurance", "saving", "investing", "credit")
VIDEOS = [f"v{t}{j}" for t in range(4) for j in range(3)]  # v00 v01 v02 v10 ... v32
VIDEO_SCALE = (1.0, 0.9, 0.8)

# product id -> (axis weights, record fields)
PRODUCTS: dict[str, tuple[dict[int, float], dict[str, Any]]] = {
    "p-ins": ({0: 1.0}, {"name": "Health Shield", "category": "insurance", "risk_level": 1}),
    "p-dep": ({1: 1.0}, {"name": "Easy Saver", "category": "deposit", "risk_level": 1}),
    "p-pen": (
        {1: 0.8, 2: 0.5},
        {"name": "Pension Plan", "category": "pension", "risk_level": 2, "holdable_once": True},
    ),
    "p-fund": ({2: 1.0}, {"name": "Equity Fund", "category": "fund", "risk_level": 4}),
    "p-loan": (
        {3: 1.0},
        {"name": "Flex Loan", "category": "credit", "risk_level": 2, "disclosure": "APR 9.9%"},
    ),
    "p-nodisc": ({3: 1.2}, {"name": "Quick Loan", "category": "credit", "risk_level": 1}),
}
PRODUCT_IDS = sorted(PRODUCTS)

# Published users: one per topic axis.
USERS = {"u-ins": 0, "u-save": 1, "u-inv": 2, "u-credit": 3}
# Global popularity: the reverse of the id order, so popularity differs from any topic.
VIDEO_POPULARITY = np.arange(len(VIDEOS), 0, -1, dtype=np.float32)
# Segment popularity: "young" watches investing, "retired" insurance.
SEGMENTS = {"young": 2, "retired": 0}


def video_factors() -> np.ndarray:
    factors = np.zeros((len(VIDEOS), DIM), dtype=np.float32)
    for i, video in enumerate(VIDEOS):
        topic, j = int(video[1]), int(video[2])
        factors[i, topic] = VIDEO_SCALE[j]
    return factors


def product_factors() -> np.ndarray:
    factors = np.zeros((len(PRODUCT_IDS), DIM), dtype=np.float32)
    for i, product in enumerate(PRODUCT_IDS):
        for axis, weight in PRODUCTS[product][0].items():
            factors[i, axis] = weight
    return factors


def product_records() -> list[dict[str, Any]]:
    records = []
    for product in PRODUCT_IDS:
        fields = {"product_id": product, "disclosure": "Terms apply.", **PRODUCTS[product][1]}
        if product == "p-nodisc":
            fields["disclosure"] = None
        records.append(fields)
    return records


def video_records() -> list[dict[str, Any]]:
    return [{"video_id": v, "title": f"{TOPICS[int(v[1])]} #{v[2]}"} for v in VIDEOS]


def write_planted_model(
    models_dir: Path,
    version: str,
    user_scale: float = 1.0,
    trending_weight: float = 0.0,
    today_weight: float = 0.0,
) -> Path:
    """Export the planted model as models_dir/<version>/ (through the real exporter); with a
    trending weight, a trending prior over 24 hours that is 0 for every video as exported;
    with a today weight, published vectors blended with the fold-in of recent events."""
    users = np.zeros((len(USERS), DIM), dtype=np.float32)
    for i, axis in enumerate(USERS.values()):
        users[i, axis] = user_scale
    segment_table = np.zeros((len(SEGMENTS), len(VIDEOS)), dtype=np.float32)
    for s, topic in enumerate(SEGMENTS.values()):
        for j in range(3):
            segment_table[s, VIDEOS.index(f"v{topic}{j}")] = 10 - j
    arrays = {
        "video_popularity.npy": VIDEO_POPULARITY,
        "product_popularity.npy": np.ones(len(PRODUCT_IDS), dtype=np.float32),
        "segment_ids.npy": np.array(list(SEGMENTS)),
        "segment_video_popularity.npy": segment_table,
        "user_factors.npy": users,
        "user_ids.npy": np.array(list(USERS)),
    }
    # Where a video published since is placed: its topic's videos (their metadata)
    records = {v: VideoRecord(video_id=v, topics=[TOPICS[int(v[1])]]) for v in VIDEOS}
    placed = fit_metadata_map(VIDEOS, records, video_factors())
    arrays[METADATA_MAP_FILE] = placed.weights
    arrays[METADATA_FEATURES_FILE] = placed.features
    arrays[USER_GRAM_FILE] = users.T @ users
    params: dict[str, Any] = {
        "regularization": 0.1,
        "alpha": 1.0,
        "confidence": "linear",
        "fresh": {"regularization": 0.1},
        "today": {"weight": today_weight},
    }
    if trending_weight > 0:
        arrays[TRENDING_FILE] = np.zeros(len(VIDEOS), dtype=np.float32)
        params["trending"] = {"weight": trending_weight, "hours": 24.0}
    info = {"params": params}
    items = np.vstack([video_factors(), product_factors()])
    return export_model(
        models_dir, items, np.array(VIDEOS), np.array(PRODUCT_IDS), info, version, arrays
    )
