-- drop_view: a view that became a materialised table.
DROP VIEW {{ rel }}
