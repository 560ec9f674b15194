-- meta_schema: the refresh engine's bookkeeping (pipelines/refresh.py), outside the documented main schema.
CREATE SCHEMA IF NOT EXISTS meta
