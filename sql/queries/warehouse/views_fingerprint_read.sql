-- views_fingerprint_read: the fingerprint of the view files and migrations the objects were made from.
SELECT fingerprint FROM meta.views_state
