-- Who gets a feature row: a registered managed condition active on :as_of, alive on :as_of.
-- Portable SQL (DuckDB dialect, transpiled to Spark by sqlglot): no QUALIFY, and no list functions
-- beyond MAX_BY(x, key, n), LIST_AVG and list indexing, which risk/engines/spark_sql.py carries to Spark.
-- Only the persons of `managed` get a feature row, so every per-person aggregate over an event table keeps
-- their rows only (`person_id IN (SELECT person_id FROM managed)`) before grouping: on the other-shape
-- county 85 % of persons are not managed, and their groups cost as much as everyone else's.

-- cte: active_conditions
SELECT person_id, condition, enrolled_on
FROM conditions
WHERE enrolled_on <= :as_of AND (ended_on IS NULL OR ended_on > :as_of)

-- cte: managed
SELECT a.person_id,
       MAX(CASE WHEN a.condition = 'hypertension' THEN 1 ELSE 0 END) = 1 AS has_hypertension,
       MAX(CASE WHEN a.condition = 'diabetes_t2' THEN 1 ELSE 0 END) = 1 AS has_diabetes_t2,
       COUNT(DISTINCT a.condition) AS n_chronic_conditions,
       MIN(CASE WHEN m.condition IS NOT NULL THEN a.enrolled_on END) AS enrolled_on
FROM active_conditions a
LEFT JOIN vs_managed_conditions m ON m.condition = a.condition
GROUP BY a.person_id
HAVING MAX(CASE WHEN m.condition IS NOT NULL THEN 1 ELSE 0 END) = 1
