-- readonly/use: make the attached snapshot catalog {{ catalog }} the default for unqualified names.
-- grain: no rows (a statement). Run by pipelines/readonly.py open_snapshot and on every dashboard cursor
-- (dashboards/connection.py: a cursor does not inherit its connection's default catalog).
USE {{ catalog }};
