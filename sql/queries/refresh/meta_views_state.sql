-- meta_views_state: the fingerprint of the view files and migrations the views and tables were made from.
CREATE TABLE IF NOT EXISTS meta.views_state (fingerprint VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)
