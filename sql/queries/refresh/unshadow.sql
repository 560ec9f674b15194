DROP VIEW IF EXISTS temp.{{ rel }}
