DELETE FROM meta.views_state
