-- Blood pressure and body measurements from vitals (any source). "Last" orders by measured_at and then
-- source_row (ties on the timestamp stay deterministic) through one numeric key:
--   seconds since 2000-01-01 * 1e9 + source_row.
-- Everything comes from one aggregate over one scan of the largest table. The last three readings are
-- MAX_BY(x, key, 3), a per-person top-N list, newest first (Spark: rewritten by risk/engines/spark_sql.py
-- to a sorted COLLECT_LIST); the last reading is its first element. A ROW_NUMBER() <= 3 window computing
-- the same means took twice as long on DuckDB, which re-reads the table for the top rows' other columns.
-- sbp and dbp are never NULL (data contract), so every person here has non-empty lists.

-- cte: bp_summary
SELECT person_id,
       sbp_last3[1] AS bp_last_sbp,
       dbp_last3[1] AS bp_last_dbp,
       bp_last_date,
       LIST_AVG(sbp_last3) AS bp_mean3_sbp,
       LIST_AVG(dbp_last3) AS bp_mean3_dbp,
       bp_readings_12m,
       bp_controlled_share_12m,
       bmi_last,
       waist_last
FROM (SELECT person_id,
             MAX_BY(sbp, order_key, 3) AS sbp_last3,
             MAX_BY(dbp, order_key, 3) AS dbp_last3,
             CAST(MAX(measured_at) AS DATE) AS bp_last_date,
             COUNT(CASE WHEN measured_at >= :window_start_ts THEN 1 END) AS bp_readings_12m,
             AVG(CASE WHEN measured_at >= :window_start_ts
                      THEN CASE WHEN sbp < :sbp_controlled_below AND dbp < :dbp_controlled_below
                                THEN 1.0 ELSE 0.0 END
                 END) AS bp_controlled_share_12m,
             MAX_BY(weight_kg / ((height_cm / 100.0) * (height_cm / 100.0)), order_key)
                 FILTER (WHERE weight_kg IS NOT NULL AND height_cm IS NOT NULL) AS bmi_last,
             MAX_BY(waist_cm, order_key) FILTER (WHERE waist_cm IS NOT NULL) AS waist_last
      FROM (SELECT person_id, measured_at, sbp, dbp, weight_kg, height_cm, waist_cm,
                   DATE_DIFF('second', TIMESTAMP '2000-01-01 00:00:00', measured_at) * 1000000000 + source_row
                       AS order_key
            FROM vitals
            WHERE measured_at < :as_of_end AND person_id IN (SELECT person_id FROM managed)) vitals_asof
      GROUP BY person_id) per_person
