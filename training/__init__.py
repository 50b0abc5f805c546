"""recsvc offline pipeline: synthetic world, loading, ALS training, evaluation, tuning."""
