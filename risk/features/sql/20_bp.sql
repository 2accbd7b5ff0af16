-- Blood pressure and body measurements from vitals (any source). "Last" orders by measured_at and then
-- source_row (ties on the timestamp stay deterministic) through one numeric key:
--   seconds since 2000-01-01 * 1e9 + source_row.
-- The last three readings come from a ROW_NUMBER() <= 3 filter, which DuckDB runs as a per-person top-N.
-- vitals_asof is read by both vitals_last3 and bp_window so that DuckDB streams one scan of the largest
-- table (and computes the key once) into both; Spark inlines it. fu_day_bp keeps its own scan on purpose:
-- a third consumer makes DuckDB materialise the whole CTE, which costs more than the extra scan.

-- cte: vitals_asof
SELECT person_id, measured_at, sbp, dbp, weight_kg, height_cm, waist_cm, source_row,
       DATE_DIFF('second', TIMESTAMP '2000-01-01 00:00:00', measured_at) * 1000000000 + source_row AS order_key
FROM vitals
WHERE measured_at < :as_of_end

-- cte: vitals_last3
SELECT person_id, measured_at, sbp, dbp, rn
FROM (SELECT person_id, measured_at, sbp, dbp,
             ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY order_key DESC) AS rn
      FROM vitals_asof) ranked
WHERE rn <= 3

-- cte: bp_recent
SELECT person_id,
       MAX(CASE WHEN rn = 1 THEN sbp END) AS bp_last_sbp,
       MAX(CASE WHEN rn = 1 THEN dbp END) AS bp_last_dbp,
       CAST(MAX(measured_at) AS DATE) AS bp_last_date,
       AVG(sbp) AS bp_mean3_sbp,
       AVG(dbp) AS bp_mean3_dbp
FROM vitals_last3
GROUP BY person_id

-- cte: bp_window
SELECT person_id,
       COUNT(CASE WHEN measured_at >= :window_start_ts THEN 1 END) AS bp_readings_12m,
       AVG(CASE WHEN measured_at >= :window_start_ts
                THEN CASE WHEN sbp < :sbp_controlled_below AND dbp < :dbp_controlled_below THEN 1.0 ELSE 0.0 END
           END) AS bp_controlled_share_12m,
       MAX_BY(weight_kg / ((height_cm / 100.0) * (height_cm / 100.0)), order_key)
           FILTER (WHERE weight_kg IS NOT NULL AND height_cm IS NOT NULL) AS bmi_last,
       MAX_BY(waist_cm, order_key) FILTER (WHERE waist_cm IS NOT NULL) AS waist_last
FROM vitals_asof
GROUP BY person_id
