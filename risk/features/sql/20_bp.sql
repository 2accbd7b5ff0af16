-- Blood pressure and body measurements from vitals (any source). Ties on measured_at are broken by
-- source_row so the "last" reading is deterministic.

-- cte: vitals_ranked
SELECT person_id, measured_at, sbp, dbp, weight_kg, height_cm, waist_cm,
       ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY measured_at DESC, source_row DESC) AS rn
FROM vitals
WHERE measured_at < :as_of_end

-- cte: bp
SELECT person_id,
       MAX(CASE WHEN rn = 1 THEN sbp END) AS bp_last_sbp,
       MAX(CASE WHEN rn = 1 THEN dbp END) AS bp_last_dbp,
       CAST(MAX(measured_at) AS DATE) AS bp_last_date,
       AVG(CASE WHEN rn <= 3 THEN sbp END) AS bp_mean3_sbp,
       AVG(CASE WHEN rn <= 3 THEN dbp END) AS bp_mean3_dbp,
       COUNT(CASE WHEN measured_at >= :window_start_ts THEN 1 END) AS bp_readings_12m,
       AVG(CASE WHEN measured_at >= :window_start_ts
                THEN CASE WHEN sbp < :sbp_controlled_below AND dbp < :dbp_controlled_below THEN 1.0 ELSE 0.0 END
           END) AS bp_controlled_share_12m,
       MIN_BY(weight_kg / ((height_cm / 100.0) * (height_cm / 100.0)), rn)
           FILTER (WHERE weight_kg IS NOT NULL AND height_cm IS NOT NULL) AS bmi_last,
       MIN_BY(waist_cm, rn) FILTER (WHERE waist_cm IS NOT NULL) AS waist_last
FROM vitals_ranked
GROUP BY person_id
