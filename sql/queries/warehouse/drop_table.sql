-- drop_table: a materialised name that became a view (its file lost the materialized header).
DROP TABLE {{ rel }}
