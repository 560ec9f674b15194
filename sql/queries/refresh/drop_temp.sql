DROP TABLE IF EXISTS temp.{{ tmp }}
